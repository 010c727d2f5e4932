package kernel

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// MaxFrame bounds one frame in either direction. The kernel coalesces output
// into chunks far below this; a larger header means a corrupt channel.
const MaxFrame = 64 << 20

// Frame is the union of every frame the kernel and host exchange (see the
// protocol at the top of kernel.py). Relays such as a VM guest agent read
// and write frames with ReadFrame and WriteFrame.
type Frame struct {
	Type string `json:"type"`
	ID   int64  `json:"id,omitempty"`

	// exec
	Code        string `json:"code,omitempty"`
	OutputLimit int64  `json:"output_limit,omitempty"`

	// out
	Stream string `json:"stream,omitempty"`
	Data   string `json:"data,omitempty"`

	// display: a mime bundle, binary types base64 (sdk.DecodeBundle)
	Bundle map[string]string `json:"bundle,omitempty"`

	// host_call / host_result
	Call   int64           `json:"call,omitempty"`
	Method string          `json:"method,omitempty"`
	Args   json.RawMessage `json:"args,omitempty"`
	OK     bool            `json:"ok,omitempty"`
	Result any             `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
	// ErrorCode says why a host call failed (sdk.ToolError* codes).
	ErrorCode string `json:"error_code,omitempty"`
	// Content is a tool result's content items, when it has more than
	// text; the kernel turns it into a list of parts.
	Content []sdk.ContentPart `json:"content,omitempty"`

	// result
	ExitCode  int             `json:"exit_code,omitempty"`
	Kind      string          `json:"kind,omitempty"`
	Message   string          `json:"message,omitempty"`
	Exception *FrameException `json:"exception,omitempty"`
	Truncated bool            `json:"truncated,omitempty"`

	// configure
	Env     map[string]string `json:"env,omitempty"`
	Cwd     string            `json:"cwd,omitempty"`
	Forget  bool              `json:"forget_import_caches,omitempty"`
	Preload []string          `json:"preload,omitempty"`
	// configure, since the set-up cells of backends were folded in
	ImportPaths []string `json:"import_paths,omitempty"`
	MemoryLimit int64    `json:"memory_limit,omitempty"`
	Reseed      bool     `json:"reseed,omitempty"`

	// ready
	Pid      int    `json:"pid,omitempty"`
	Python   string `json:"python,omitempty"`
	Platform string `json:"platform,omitempty"`
}

// FrameException is the exception of a failed cell.
type FrameException struct {
	Type      string `json:"type"`
	Message   string `json:"message"`
	Traceback string `json:"traceback"`
}

// WriteFrame writes m as one length-prefixed JSON frame.
func WriteFrame(w io.Writer, m *Frame) error {
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode frame: %w", err)
	}
	buf := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(buf, uint32(len(body)))
	copy(buf[4:], body)
	_, err = w.Write(buf)
	return err
}

// ReadFrame reads one frame; a frame over MaxFrame or one that is not
// JSON is an error (the channel is then unusable).
func ReadFrame(r io.Reader) (*Frame, error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(head[:])
	if n > MaxFrame {
		return nil, fmt.Errorf("kernel channel corrupt: frame of %d bytes announced", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("kernel channel: truncated frame: %w", err)
	}
	m := &Frame{}
	if err := json.Unmarshal(body, m); err != nil {
		return nil, fmt.Errorf("kernel channel corrupt: %w", err)
	}
	return m, nil
}
