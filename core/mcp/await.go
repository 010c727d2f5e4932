package mcp

import (
	"context"
	"sync"
)

// AwaitListings waits for the servers whose tool lists are not known yet
// (no cache, never started) to start or fail, within ctx, so that code
// about to import their stubs gets typed functions rather than the pending
// module. Servers already known or unavailable are not waited for.
func (h *Hub) AwaitListings(ctx context.Context) {
	if h == nil {
		return
	}
	var wg sync.WaitGroup
	for _, s := range h.servers {
		if st := s.status(); st.ToolsKnown || st.State == StateUnavailable {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.acquire(ctx); err != nil {
				h.logger.Debug("tool list not known before the execution", "server", s.cfg.Name, "error", err)
			}
		}()
	}
	wg.Wait()
}
