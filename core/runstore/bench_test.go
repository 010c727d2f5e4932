package runstore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mcpruntime/mcpruntime/core/agent"
	"github.com/mcpruntime/mcpruntime/sdk"
)

// benchRuns is how many runs the listing benchmarks store.
const benchRuns = 1000

// benchStep is a typical step: a few lines of code, 1 KiB of output.
func benchStep() *agent.Step {
	return &agent.Step{Code: "rows = load()\nprint(summary(rows))\n", Stdout: strings.Repeat("x", 1024),
		Result: &sdk.ExecResult{}, Duration: 30 * time.Millisecond}
}

func benchRun(i int) Run {
	return Run{ID: fmt.Sprintf("r-%06d", i), Task: "summarize the sales of region " + fmt.Sprint(i), Session: "s-1", Started: time.Unix(int64(i), 0)}
}

func BenchmarkAppendStep(b *testing.B) {
	ctx := context.Background()
	s := openStore(b)
	if err := s.Create(ctx, Run{ID: "r-1", Task: "t", Started: time.Now()}); err != nil {
		b.Fatal(err)
	}
	if err := s.AppendReply(ctx, "r-1", 1, "```python\nprint(1)\n```"); err != nil {
		b.Fatal(err)
	}
	st := benchStep()
	b.ResetTimer()
	for i := range b.N {
		st.N = i + 1
		if err := s.AppendStep(ctx, "r-1", 1, st); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkList(b *testing.B) {
	ctx := context.Background()
	s := openStore(b)
	for i := range benchRuns {
		if err := s.Create(ctx, benchRun(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		if l, err := s.List(ctx); err != nil || len(l) != benchRuns {
			b.Fatal(len(l), err)
		}
	}
}

func openStore(tb testing.TB) *Store {
	s, err := Open(context.Background(), tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Error(err)
		}
	})
	return s
}
