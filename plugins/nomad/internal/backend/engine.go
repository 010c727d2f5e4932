package backend

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/api"

	"github.com/mcpruntime/mcpruntime/sdk/kernel"
	sdkpool "github.com/mcpruntime/mcpruntime/sdk/pool"
)

// engine is one configuration of the backend: a Nomad client, the jobs it
// owns and its warm pool.
type engine struct {
	s         Settings
	c         *api.Client
	namespace string
	// owner names every job of this plugin's state directory (the same
	// after a restart); instance names this process's. Jobs carry both in
	// their meta, and the sweep touches only jobs of this owner.
	owner    string
	instance string
	log      hclog.Logger
	pool     *sdkpool.Pool[*sandbox]
	poolSize int

	mu sync.Mutex
	// live holds every sandbox of this engine not yet killed.
	live map[string]*sandbox
	// orphans are the session jobs a dead instance of this owner left,
	// kept for RecoverSessions until the recovery grace ends.
	orphans map[string]*api.JobListStub
	// suspects are nodes whose channels broke without a task end, until
	// the time given: placements avoid them.
	suspects map[string]time.Time
	closed   bool
}

// suspectFor is how long a node whose channel broke is avoided: longer
// than the servers take to mark a dead node down.
const suspectFor = time.Minute

func (e *engine) suspect(nodeID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.suspects[nodeID] = time.Now().Add(suspectFor)
}

// avoided lists the suspect nodes still to be avoided; none when every
// ready node is suspect (a placement that waits beats one that cannot be).
func (e *engine) avoided(ctx context.Context) []string {
	e.mu.Lock()
	var out []string
	for id, until := range e.suspects {
		if time.Now().After(until) {
			delete(e.suspects, id)
			continue
		}
		out = append(out, id)
	}
	e.mu.Unlock()
	if len(out) == 0 {
		return nil
	}
	nodes, _, err := e.c.Nodes().List(e.qopts(ctx))
	if err != nil {
		return out
	}
	avoid := map[string]bool{}
	for _, id := range out {
		avoid[id] = true
	}
	for _, n := range nodes {
		if n.Status == api.NodeStatusReady && !avoid[n.ID] {
			return out
		}
	}
	return nil
}

// ownerID is derived from the plugin's state directory (and the host),
// so that a restarted plugin finds its jobs and two runtimes sharing a
// cluster never sweep each other's.
func ownerID(stateDir string) string {
	host, _ := os.Hostname()
	dir, err := filepath.Abs(stateDir)
	if err != nil {
		dir = stateDir
	}
	sum := sha256.Sum256([]byte(host + "\x00" + dir))
	return hex.EncodeToString(sum[:])[:12]
}

func newEngine(ctx context.Context, s Settings, stateDir string, poolSize int, log hclog.Logger) (*engine, error) {
	cfg := s.clientConfig()
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("nomad client for %s: %w", cfg.Address, err)
	}
	e := &engine{
		s: s, c: c, namespace: cfg.Namespace, owner: ownerID(stateDir),
		instance: strings.ToLower(rand.Text()[:8]), log: log,
		live: map[string]*sandbox{}, orphans: map[string]*api.JobListStub{}, suspects: map[string]time.Time{},
		poolSize: poolSize,
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.Status().Leader(); err != nil {
		return nil, fmt.Errorf("nomad at %s does not answer (start a local cluster with `make -C plugins/nomad cluster`, or set address / NOMAD_ADDR): %w", cfg.Address, err)
	}
	if err := e.sweep(pctx); err != nil {
		return nil, err
	}
	e.pool = sdkpool.New(poolSize, sdkpool.Lifecycle[*sandbox]{
		Create: func(ctx context.Context) (*sandbox, error) { return e.place(ctx, "", e.s.memoryBytes) },
		// A kernel's first cell and set-up load modules the session's
		// set-up would otherwise wait for.
		Warm: func(ctx context.Context, sb *sandbox) error {
			return sb.Conn().Configure(ctx, kernel.Setup{Preload: []string{"resource", "select"}})
		},
		Alive:   func(sb *sandbox) bool { return sb.alive() },
		Destroy: func(sb *sandbox) { sb.Kill(context.Background()) },
	}, sdkpool.WithLogger(log.Named("pool")))
	return e, nil
}

// track and forget keep the set of this engine's sandboxes. track
// refuses once the engine is closing (its caller purges the sandbox).
func (e *engine) track(sb *sandbox) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	e.live[sb.jobID] = sb
	return true
}

func (e *engine) forget(sb *sandbox) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.live, sb.jobID)
}

// purgeNow purges, in parallel, every job this engine knows of (its
// sandboxes' and the unrecovered orphans') without waiting for the tasks
// to end: a plugin that is told to stop has seconds before it is killed.
func (e *engine) purgeNow() {
	e.mu.Lock()
	e.closed = true
	live := make([]*sandbox, 0, len(e.live))
	for _, sb := range e.live {
		live = append(live, sb)
	}
	e.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(e.sweepOrphans)
	for _, sb := range live {
		wg.Go(sb.stop)
	}
	wg.Wait()
}

// acquire gives a session a sandbox: a pooled one when the session's
// memory fits the pool's allocations, else a new placement.
func (e *engine) acquire(ctx context.Context, sessionID string, memory int64) (*sandbox, error) {
	if memory <= e.s.memoryBytes {
		sb, pooled, err := e.pool.Take(ctx)
		if err != nil {
			return nil, err
		}
		if pooled {
			sb.session = sessionID
			if err := e.record(ctx, sb.jobID, sessionID); err != nil {
				sb.Kill(ctx)
				return nil, err
			}
			return sb, nil
		}
		memory = e.s.memoryBytes
	}
	sb, err := e.place(ctx, sessionID, memory)
	if err != nil {
		return nil, err
	}
	return sb, nil
}

// close purges every job this engine placed (pool included) and the
// orphaned jobs of earlier processes it did not recover: once the plugin
// stops, nothing of its owner is left on the cluster.
func (e *engine) close() {
	e.purgeNow()
	e.pool.Close()
	e.mu.Lock()
	left := make([]*sandbox, 0, len(e.live))
	for _, sb := range e.live {
		left = append(left, sb)
	}
	e.mu.Unlock()
	var wg sync.WaitGroup
	for _, sb := range left {
		wg.Go(func() { sb.Kill(context.Background()) })
	}
	wg.Wait()
}
