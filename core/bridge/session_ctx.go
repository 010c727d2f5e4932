package bridge

import "context"

type sessionKey struct{}

// WithSession tells the LLM and Tools behind a Bridge which session a host
// call comes from: built-in helpers answer per session (a run's input,
// the depth of a recursive ask_llm).
func WithSession(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, sessionKey{}, id)
}

// SessionFrom is the session WithSession put in ctx, or "".
func SessionFrom(ctx context.Context) string {
	id, _ := ctx.Value(sessionKey{}).(string)
	return id
}
