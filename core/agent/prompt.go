package agent

import (
	"fmt"
	"strings"
	"time"
)

const basePrompt = `You solve tasks by writing Python 3 that runs in a sandbox session.
Rules:
- Put code in fenced blocks: ` + "```python ... ```" + `. Every block in your reply runs, in order, in the same session; variables persist between replies.
- You will see each block's stdout, stderr and errors. Print what you need to see; long output is cut in the middle (its start and end are kept).
- The working directory is a persistent workspace; files you write stay there.
- ask_llm(prompt) asks a language model (use it to process large inputs in pieces).
- When you have the final answer, reply with plain text and NO code block. That text is returned to the user.
- Prefer small self-contained functions with type annotations (imports inside or at the top of the block, no reliance on variables of earlier steps): such functions are saved as reusable skills.`

// Environment is what the system prompt tells the model about the sandbox
// it writes code for, from the backend's capabilities and configured
// limits; zero fields are left out.
type Environment struct {
	Backend string
	// Isolation is the backend's declared boundary (wasm, container, ...).
	Isolation string
	// Network is "none", "available", or "" when the backend does not say.
	Network string
	// StepTimeout bounds one block; Memory (bytes) and Output (bytes) are
	// the session's limits.
	StepTimeout time.Duration
	Memory      int64
	Output      int64
	// HostCalls is false when the backend cannot reach ask_llm and tools.
	HostCalls bool
	// Packages are the importable third-party packages, when known.
	Packages []string
	// ObservationLimit is how much of a block's output the model sees.
	ObservationLimit int
	// LLMCalls and LLMTokens are the run's ask_llm budget (0: none).
	LLMCalls  int
	LLMTokens int64
}

// systemPrompt is the run's system prompt: the rules, the sandbox's real
// limits, and the listing of skills and tools.
func systemPrompt(env *Environment, listing string) string {
	var b strings.Builder
	b.WriteString(basePrompt)
	if env != nil {
		b.WriteString("\n\nThe sandbox:\n")
		if env.Backend != "" {
			line := "- backend: " + env.Backend
			if env.Isolation != "" {
				line += " (" + env.Isolation + " isolation)"
			}
			b.WriteString(line + "\n")
		}
		switch env.Network {
		case "none":
			b.WriteString("- no network access: do not try to download anything or call web APIs\n")
		case "available":
			b.WriteString("- network access is available\n")
		default:
			b.WriteString("- network access is not guaranteed: do not rely on it\n")
		}
		if env.StepTimeout > 0 {
			fmt.Fprintf(&b, "- each block must finish within %s or it is stopped (variables of a stopped block may be lost)\n", env.StepTimeout)
		}
		if env.Memory > 0 {
			fmt.Fprintf(&b, "- memory limit: %s\n", size(env.Memory))
		}
		if env.Output > 0 {
			fmt.Fprintf(&b, "- output beyond %s per block is dropped\n", size(env.Output))
		}
		if env.ObservationLimit > 0 {
			fmt.Fprintf(&b, "- you see at most %s of a block's output (start and end)\n", size(int64(env.ObservationLimit)))
		}
		if !env.HostCalls {
			b.WriteString("- ask_llm and MCP tools are not available on this backend\n")
		} else if env.LLMCalls > 0 || env.LLMTokens > 0 {
			var parts []string
			if env.LLMCalls > 0 {
				parts = append(parts, fmt.Sprintf("%d calls", env.LLMCalls))
			}
			if env.LLMTokens > 0 {
				parts = append(parts, fmt.Sprintf("%d tokens", env.LLMTokens))
			}
			b.WriteString("- ask_llm budget for this run: " + strings.Join(parts, ", ") + "\n")
		}
		if len(env.Packages) > 0 {
			b.WriteString("- packages available beyond the standard library: " + strings.Join(env.Packages, ", ") + "\n")
		} else {
			b.WriteString("- only the standard library is certain to be there: check with importlib.util.find_spec before relying on a third-party package\n")
		}
	}
	if listing = strings.TrimSpace(listing); listing != "" {
		b.WriteString("\n" + listing + "\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

func size(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%.4g MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.4g KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
