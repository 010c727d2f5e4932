package agent

import (
	"strings"

	"github.com/mcpruntime/mcpruntime/core/llm"
)

// Transcript is the conversation of an earlier run as the model saw it:
// its task, each reply with the observation of its steps, and its final
// answer if it had one. Runs continued in the same session put it in
// Options.Prior.
func Transcript(task string, turns []Turn, answer string, observationLimit int) []llm.Message {
	if observationLimit <= 0 {
		observationLimit = 16 << 10
	}
	msgs := []llm.Message{{Role: "user", Content: task}}
	for _, t := range turns {
		msgs = append(msgs, llm.Message{Role: "assistant", Content: t.Reply})
		numbered := len(CodeBlocks(t.Reply)) > 1
		var obs strings.Builder
		for _, st := range t.Steps {
			obs.WriteString(observation(st, numbered, observationLimit))
		}
		if len(t.Steps) == 0 {
			obs.WriteString("(the run stopped before this reply's code ran)\n")
		}
		msgs = append(msgs, llm.Message{Role: "user", Content: obs.String()})
	}
	if answer = strings.TrimSpace(answer); answer != "" {
		msgs = append(msgs, llm.Message{Role: "assistant", Content: answer})
	}
	return msgs
}
