package session

import (
	"strings"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// capture keeps what an execution printed (bounded like the output itself)
// for observers such as the replay log.
type capture struct {
	left           int64
	stdout, stderr strings.Builder
	calls          []*sdk.HostCallNotice
	displays       []*sdk.Display
}

func newCapture(limit int64) *capture {
	if limit <= 0 {
		limit = 1 << 20
	}
	return &capture{left: limit}
}

func (c *capture) add(e sdk.Event) {
	switch e.Kind {
	case sdk.EventHostCall:
		c.calls = append(c.calls, e.HostCall)
		return
	case sdk.EventDisplay:
		// Charged to the same bound; the backend already capped it.
		if n := int64(e.Display.Size()); n <= c.left {
			c.left -= n
			c.displays = append(c.displays, e.Display)
		}
		return
	case sdk.EventStdout, sdk.EventStderr:
	default:
		return
	}
	data := e.Data
	if int64(len(data)) > c.left {
		data = data[:c.left]
	}
	c.left -= int64(len(data))
	if e.Kind == sdk.EventStdout {
		c.stdout.Write(data)
	} else {
		c.stderr.Write(data)
	}
}
