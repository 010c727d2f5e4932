package bridge

import (
	"errors"
	"fmt"
)

// Budget bounds the ask_llm calls of one agent run in a session (zero
// fields: no bound).
type Budget struct {
	Calls  int
	Tokens int64
}

// ErrBudget is wrapped by the error sandbox code gets when a run's ask_llm
// budget is spent.
var ErrBudget = errors.New("ask_llm budget exhausted")

// budgetError is what sandbox code sees: the message alone, which names
// the setting to raise; errors.Is(err, ErrBudget) holds.
type budgetError string

func (e budgetError) Error() string        { return string(e) }
func (e budgetError) Is(target error) bool { return target == ErrBudget }

// budgetState is a session's budget and what its run spent of it.
type budgetState struct {
	limit  Budget
	calls  int
	tokens int64
}

// SetBudget bounds the ask_llm calls made from session id from now on,
// counting from zero: an agent run sets it when it starts.
func (b *Bridge) SetBudget(id string, limit Budget) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.budgets == nil {
		b.budgets = map[string]*budgetState{}
	}
	b.budgets[id] = &budgetState{limit: limit}
}

// ClearBudget lifts session id's budget: its run ended.
func (b *Bridge) ClearBudget(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.budgets, id)
}

// reserve takes one call from session id's budget before the call is
// made (so that concurrent calls cannot overshoot it), or says why not.
func (b *Bridge) reserve(id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.budgets[id]
	if st == nil {
		return nil
	}
	if st.limit.Calls > 0 && st.calls >= st.limit.Calls {
		return budgetError(fmt.Sprintf("ask_llm budget of %d calls for this run exhausted (agent.ask_llm_calls)", st.limit.Calls))
	}
	if st.limit.Tokens > 0 && st.tokens >= st.limit.Tokens {
		return budgetError(fmt.Sprintf("ask_llm budget of %d tokens for this run exhausted (%d used; agent.ask_llm_tokens)", st.limit.Tokens, st.tokens))
	}
	st.calls++
	return nil
}

// spend charges tokens to session id's budget after a call.
func (b *Bridge) spend(id string, tokens int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if st := b.budgets[id]; st != nil {
		st.tokens += tokens
	}
}
