package proto

// Control operations the host sends (Msg.Op).
const (
	OpPing        = "ping"
	OpStartKernel = "start_kernel"
	OpAttach      = "attach"
	OpInterrupt   = "interrupt"
	OpReseed      = "reseed"
	OpScan        = "scan"
	OpRead        = "read"
	OpWrite       = "write"
	// OpWriteBatch writes several whole small files (Files) at once: one
	// round trip instead of one per file. Length on the Final piece of
	// an OpWrite is the file's size (the guest truncates to it, so holes
	// the host skipped stay holes).
	OpWriteBatch = "write_batch"
	// OpReadBatch reads several whole small files (Files: paths only);
	// the reply's Files hold those read whole (a file gone or grown past
	// what a batch carries is left out: the host reads it alone).
	OpReadBatch = "read_batch"
	// OpPlaceholder creates the workspace file Path of Length bytes whose
	// content follows later in OpFill requests naming the same Pending
	// id (large files, sent in the background). Until the last piece has
	// arrived, guest code that opens the file waits (fanotify permission
	// events), and the guest's scan does not report it. An error means
	// the guest cannot do this: the host sends the file at once instead.
	OpPlaceholder = "placeholder"
	// OpFill writes Data at Offset into pending file Pending; Final ends
	// it (Length: its size; -1: abandoned, the placeholder is removed).
	OpFill     = "fill"
	OpRemove   = "remove"
	OpMkdir    = "mkdir"
	OpWipe     = "wipe"
	OpPoweroff = "poweroff"
	// OpStopKernel kills kernel generation Gen and what it started, if it
	// is the one running.
	OpStopKernel = "stop_kernel"
	// OpStatus reports the kernel generation the agent runs (Gen, Pid 0
	// when it has exited, with its exit report).
	OpStatus = "status"
	// OpSync is echoed with its Data: a host that connects to a running
	// agent (a restarted plugin) reads until the echo, which marks where
	// the envelopes meant for it begin.
	OpSync = "sync"
	// OpQuota resizes the guest's workspace to what it holds plus what the
	// host's workspace file system has left: Length bytes and Offset
	// inodes (see the agent's quota.go).
	OpQuota = "quota"
	// OpWorkspaceAttach mounts the VM's workspace slot disk, which the
	// host has pointed at a session's prebuilt workspace image, in the
	// workspace's place, and takes the image's manifest (ImageManifest) as
	// what the host holds. The reply's Data says where the guest's time
	// went (the host's debug log).
	OpWorkspaceAttach = "ws_attach"
)

// Events the agent sends unprompted (Msg.Op with ID 0).
const (
	EventReady      = "ready"
	EventKernelExit = "kernel_exit"
)

// Trees the file operations address.
const (
	TreeWorkspace = "workspace"
	TreeLib       = "lib"
)

// Msg is a control message: a request (ID > 0), its reply (Reply set, same
// ID) or an event (ID 0). One struct keeps both sides trivially in sync.
type Msg struct {
	ID    uint64 `json:"id,omitempty"`
	Op    string `json:"op,omitempty"`
	Reply bool   `json:"reply,omitempty"`
	Err   string `json:"err,omitempty"`

	// start_kernel, kernel_exit, ready
	Gen      uint32 `json:"gen,omitempty"`
	Pid      int    `json:"pid,omitempty"`
	Release  string `json:"release,omitempty"`
	Python   string `json:"python,omitempty"`
	ExitCode int    `json:"exit_code,omitempty"`
	Signal   int    `json:"signal,omitempty"`
	Status   string `json:"status,omitempty"`
	Tail     string `json:"tail,omitempty"`

	// attach
	Session *SessionConfig `json:"session,omitempty"`

	// reseed
	Seed []byte `json:"seed,omitempty"`

	// file operations
	Tree    string   `json:"tree,omitempty"`
	Path    string   `json:"path,omitempty"`
	Offset  int64    `json:"offset,omitempty"`
	Length  int64    `json:"length,omitempty"`
	Data    []byte   `json:"data,omitempty"`
	Mode    uint32   `json:"mode,omitempty"`
	Final   bool     `json:"final,omitempty"`
	EOF     bool     `json:"eof,omitempty"`
	Changed []Entry  `json:"changed,omitempty"`
	Deleted []string `json:"deleted,omitempty"`
	// Examined (scan reply) is how many workspace entries the agent looked
	// at to answer: the changed ones when it tracks changes, all of them
	// when it had to walk the tree.
	Examined int `json:"examined,omitempty"`
	// Pending names a placeholder (placeholder, fill).
	Pending uint64 `json:"pending,omitempty"`
	// Files (write_batch) are whole small files written in one request.
	Files []File `json:"files,omitempty"`
}

// File is one whole file of a write_batch request.
type File struct {
	Path string `json:"path"`
	Mode uint32 `json:"mode"`
	Data []byte `json:"data,omitempty"`
}

// SessionConfig is what a pooled VM learns when a session takes it. The
// kernel's own settings (environment, working directory, memory limit,
// reseed) travel in the host's configure frame, not here.
type SessionConfig struct {
	// Pids limits the processes of the session's code (the sandbox
	// cgroup's pids.max; 0: the agent's default).
	Pids int64 `json:"pids,omitempty"`
	// LibDirs are the directories below /mcpruntime/lib the host filled.
	LibDirs []string `json:"lib_dirs,omitempty"`
}

// Entry is a file or directory the guest reports as changed.
type Entry struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	Mode uint32 `json:"mode"`
	Dir  bool   `json:"dir,omitempty"`
}
