package sdk

import (
	"fmt"
	"sync"
)

// Sessions is a backend's table of live sessions with the contract's error
// semantics: an id is reserved while its session starts (a second
// CreateSession with it gets ErrSessionExists), a missing or still-starting
// one is ErrSessionNotFound. Safe for concurrent use; the zero value is
// ready.
type Sessions[T any] struct {
	mu sync.Mutex
	m  map[string]*slot[T]
}

type slot[T any] struct {
	v     T
	ready bool
}

// Reserve claims id before a (slow) start.
func (t *Sessions[T]) Reserve(id string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.m[id]; ok {
		return fmt.Errorf("%w: %s", ErrSessionExists, id)
	}
	if t.m == nil {
		t.m = map[string]*slot[T]{}
	}
	t.m[id] = &slot[T]{}
	return nil
}

// Settle ends a reservation: with the started session, or, when err is not
// nil, by freeing the id. It returns err.
func (t *Sessions[T]) Settle(id string, v T, err error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		delete(t.m, id)
		return err
	}
	if t.m == nil {
		t.m = map[string]*slot[T]{}
	}
	t.m[id] = &slot[T]{v: v, ready: true}
	return nil
}

// Get returns a started session.
func (t *Sessions[T]) Get(id string) (T, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := t.m[id]; ok && s.ready {
		return s.v, nil
	}
	var zero T
	return zero, fmt.Errorf("%w: %s", ErrSessionNotFound, id)
}

// Remove takes a started session out of the table.
func (t *Sessions[T]) Remove(id string) (T, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := t.m[id]; ok && s.ready {
		delete(t.m, id)
		return s.v, nil
	}
	var zero T
	return zero, fmt.Errorf("%w: %s", ErrSessionNotFound, id)
}

// TakeAll empties the table and returns the started sessions (for Close).
func (t *Sessions[T]) TakeAll() []T {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []T
	for _, s := range t.m {
		if s.ready {
			out = append(out, s.v)
		}
	}
	t.m = nil
	return out
}

// Len counts the started sessions.
func (t *Sessions[T]) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, s := range t.m {
		if s.ready {
			n++
		}
	}
	return n
}
