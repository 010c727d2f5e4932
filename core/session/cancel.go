package session

import (
	"context"
	"sync"
)

// runs are the executions running in a session or waiting for it, each
// with the cancel func of its context: closing the session (DELETE,
// shutdown) cancels them instead of waiting for the code to finish, which
// could take as long as the backend's timeout.
type runs struct {
	mu      sync.Mutex
	next    uint64
	cancels map[uint64]context.CancelCauseFunc
	// closedBy is the cause the executions were cancelled with; once set,
	// no execution is admitted.
	closedBy error
}

// add admits an execution; false once the session is closed.
func (r *runs) add(cancel context.CancelCauseFunc) (uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closedBy != nil {
		return 0, false
	}
	if r.cancels == nil {
		r.cancels = map[uint64]context.CancelCauseFunc{}
	}
	r.next++
	r.cancels[r.next] = cancel
	return r.next, true
}

// remove forgets a finished execution.
func (r *runs) remove(ticket uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.cancels, ticket)
}

// close cancels every execution with cause (which must wrap
// ErrSessionClosed) and refuses new ones.
func (r *runs) close(cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closedBy == nil {
		r.closedBy = cause
	}
	for _, cancel := range r.cancels {
		cancel(r.closedBy)
	}
}

// why is the cause the session was closed with.
func (r *runs) why() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closedBy == nil {
		return ErrSessionClosed
	}
	return r.closedBy
}
