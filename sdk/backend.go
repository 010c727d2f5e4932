package sdk

import "context"

// Backend is what a sandbox plugin implements. Every method may be called
// concurrently; sessions are identified by the ID the core chose.
//
// The same interface is what the core holds for a running plugin: the gRPC
// client adapter returned by the plugin host implements it too.
type Backend interface {
	// Info names the backend and declares its capabilities.
	Info(ctx context.Context) (*Info, error)
	// ConfigSpec is the schema of the backend's runtime.hcl config block.
	ConfigSpec(ctx context.Context) (*ConfigSpec, error)
	// Configure is called once, before any session, with the decoded block.
	// A Configure that fails (a wrongly typed attribute, say) leaves the
	// backend as it was, so the core may call again with a corrected
	// config. Once one has succeeded, a backend may refuse another call
	// with an error or apply it to the sessions created after it; either
	// way the sessions that exist keep running. The conformance suite
	// checks all of this.
	Configure(ctx context.Context, cfg *Config) error
	// CreateSession starts a session ready to execute code.
	CreateSession(ctx context.Context, spec *SessionSpec) error
	// Execute runs code in a session, calling emit for output as it
	// happens, and returns the result. Failures of the code itself are
	// reported in the result; an error means the backend could not run it.
	Execute(ctx context.Context, req *ExecRequest, emit func(Event)) (*ExecResult, error)
	// Snapshot saves a session's full state (ErrNotSupported without the
	// capability).
	Snapshot(ctx context.Context, sessionID string) (*Snapshot, error)
	// Restore creates a new session from a snapshot.
	Restore(ctx context.Context, snapshotID string, spec *SessionSpec) error
	// DestroySession stops a session and frees everything it held.
	DestroySession(ctx context.Context, sessionID string) error
	// Health reports whether the backend can serve.
	Health(ctx context.Context) (*Health, error)
}

// Closer is implemented by backends that hold resources beyond sessions
// (pools, daemons, caches). Serve calls Close when the core shuts the plugin
// down or the plugin receives SIGTERM.
type Closer interface {
	Close(ctx context.Context) error
}

// NoSnapshots can be embedded by backends without the snapshot capability.
type NoSnapshots struct{}

// Snapshot reports ErrNotSupported.
func (NoSnapshots) Snapshot(context.Context, string) (*Snapshot, error) {
	return nil, ErrNotSupported
}

// Restore reports ErrNotSupported.
func (NoSnapshots) Restore(context.Context, string, *SessionSpec) error {
	return ErrNotSupported
}

// Recoverer is implemented by backends whose sandboxes can outlive the
// plugin process (containers, VMs, cluster allocations): contract version
// 2's RecoverSessions. After a plugin restart the core passes every session
// it still holds, as it created them (with a new Host for each); the
// backend adopts those whose sandbox and kernel survived and reports the
// rest, whose next Execute the core answers with state_lost. A backend
// without Recoverer recovers nothing.
type Recoverer interface {
	RecoverSessions(ctx context.Context, specs []*SessionSpec) ([]RecoveredSession, error)
}

// RecoveredSession is a backend's answer about one session in
// RecoverSessions.
type RecoveredSession struct {
	ID string `json:"id"`
	// Recovered: the sandbox and its variables are back.
	Recovered bool `json:"recovered"`
	// Reason says why a session was not recovered.
	Reason string `json:"reason,omitempty"`
}

// SnapshotDeleter is implemented by backends with the snapshot capability:
// contract version 2's DeleteSnapshot frees what a snapshot holds.
type SnapshotDeleter interface {
	DeleteSnapshot(ctx context.Context, snapshotID string) error
}
