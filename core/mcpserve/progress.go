package mcpserve

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
)

// progressChunk caps one notification's message: a cell printing faster
// than notifications go keeps each interval's head and tail (the result
// has the output; progress is for watching it live).
const progressChunk = 16 << 10

// progress sends a call's live output as notifications/progress when the
// client asked for it with a progressToken: at most one notification per
// interval, carrying the output since the previous one as its message,
// and a heartbeat when the cell is silent, so that a client that resets
// its timeout on progress waits for a long cell.
type progress struct {
	s     *Server
	ctx   context.Context
	token mcp.ProgressToken
	start time.Time

	mu      sync.Mutex
	pending *capBuffer
	seq     int
	// quiet is when the last notification went out.
	quiet time.Time

	done     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// startProgress returns the call's progress sender; without a
// progressToken it sends nothing.
func (s *Server) startProgress(ctx context.Context, req mcp.CallToolRequest) *progress {
	p := &progress{s: s, ctx: ctx, start: time.Now(), quiet: time.Now(), done: make(chan struct{})}
	if req.Params.Meta == nil || req.Params.Meta.ProgressToken == nil {
		return p
	}
	p.token, p.pending = req.Params.Meta.ProgressToken, newCapBuffer(progressChunk)
	p.wg.Add(1)
	go p.loop()
	return p
}

func (p *progress) loop() {
	defer p.wg.Done()
	t := time.NewTicker(p.s.opts.ProgressInterval)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-p.ctx.Done():
			return
		case now := <-t.C:
			p.flush(now)
		}
	}
}

// add queues output for the next notification.
func (p *progress) add(b []byte) {
	if p.token == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = p.pending.Write(b)
}

// flush sends what is pending, or a heartbeat when the cell has been
// silent for the heartbeat period.
func (p *progress) flush(now time.Time) {
	p.mu.Lock()
	var msg string
	switch {
	case p.pending.written > 0:
		msg = p.pending.String()
		p.pending = newCapBuffer(progressChunk)
	case now.Sub(p.quiet) >= p.s.opts.Heartbeat:
		msg = fmt.Sprintf("running for %s", now.Sub(p.start).Round(time.Second))
	default:
		p.mu.Unlock()
		return
	}
	p.seq++
	seq := p.seq
	p.quiet = now
	p.mu.Unlock()
	err := p.s.mcp.SendNotificationToClient(p.ctx, string(mcp.MethodNotificationProgress), map[string]any{
		"progressToken": p.token,
		"progress":      seq,
		"message":       msg,
	})
	if err != nil {
		p.s.logger.Debug("progress notification not sent", "error", err)
	}
}

// stop ends the notifications after sending the output still pending, so
// that the last notification precedes the result.
func (p *progress) stop() {
	p.stopOnce.Do(func() {
		close(p.done)
		p.wg.Wait()
		if p.token != nil && p.ctx.Err() == nil {
			p.mu.Lock()
			pending := p.pending.written > 0
			p.mu.Unlock()
			if pending {
				p.flush(time.Now())
			}
		}
	})
}
