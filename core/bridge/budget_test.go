package bridge

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// A run's budget stops ask_llm at its bound, even under concurrent calls,
// with an error naming the setting; another session and a cleared budget
// are not bounded.
func TestBudgetBoundsCalls(t *testing.T) {
	b := &Bridge{LLM: fixedLLM{}}
	b.SetBudget("run", Budget{Calls: 5})
	h := b.ForSession("run")
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused := 0, 0
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := h.AskLLM(context.Background(), &sdk.LLMRequest{Prompt: "p"})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrBudget) && err.Error() == "ask_llm budget of 5 calls for this run exhausted (agent.ask_llm_calls)":
				refused++
			default:
				t.Errorf("unexpected error %v", err)
			}
		}()
	}
	wg.Wait()
	if ok != 5 || refused != 15 {
		t.Fatalf("%d calls made, %d refused", ok, refused)
	}
	if _, err := b.ForSession("other").AskLLM(context.Background(), &sdk.LLMRequest{Prompt: "p"}); err != nil {
		t.Fatalf("another session: %v", err)
	}
	b.ClearBudget("run")
	if _, err := h.AskLLM(context.Background(), &sdk.LLMRequest{Prompt: "p"}); err != nil {
		t.Fatalf("after the run: %v", err)
	}
}

func TestBudgetBoundsTokens(t *testing.T) {
	b := &Bridge{LLM: fixedLLM{}}
	b.SetBudget("run", Budget{Tokens: 25})
	h := b.ForSession("run")
	n := 0
	for ; n < 10; n++ {
		if _, err := h.AskLLM(context.Background(), &sdk.LLMRequest{Prompt: "p"}); err != nil {
			if !errors.Is(err, ErrBudget) {
				t.Fatal(err)
			}
			break
		}
	}
	// 10 tokens a call: the third call takes it to 30, the fourth is refused.
	if n != 3 {
		t.Fatalf("%d calls before the token budget stopped them", n)
	}
}
