package config

import (
	"strings"
	"testing"
)

func TestAgentAskLLMBudget(t *testing.T) {
	cfg, err := Parse([]byte("agent {\n  ask_llm_calls = 5\n  ask_llm_tokens = 20000\n}\n"), "runtime.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Agent.AskLLMCalls != 5 || cfg.Agent.AskLLMTokens != 20000 {
		t.Fatalf("agent %+v", cfg.Agent)
	}
	if cfg, err := Parse([]byte(""), "runtime.hcl"); err != nil || cfg.Agent.AskLLMCalls != DefaultAskLLMCalls || cfg.Agent.AskLLMTokens != 0 {
		t.Fatalf("defaults: %v %+v", err, cfg)
	}
	for _, bad := range []string{"ask_llm_calls = -1", "ask_llm_calls = 1.5", "ask_llm_tokens = \"many\""} {
		_, err := Parse([]byte("agent {\n  "+bad+"\n}\n"), "runtime.hcl")
		if err == nil || !strings.Contains(err.Error(), "runtime.hcl:2") || !strings.Contains(err.Error(), "whole number") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
