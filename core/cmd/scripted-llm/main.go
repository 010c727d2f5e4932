// Command scripted-llm serves an OpenAI-compatible Chat Completions endpoint
// on loopback that answers from a script, so the examples and demos run
// without a model or network:
//
//	scripted-llm -script replies.json [-addr 127.0.0.1:0] [-record requests.json]
//
// replies.json is a JSON array of {"content": "..."} objects (see
// core/llm/llmtest.Reply). It prints "base_url=URL" on its first line and
// serves until interrupted; with -record it writes the requests it received.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/mcpruntime/mcpruntime/core/llm/llmtest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on (loopback)")
	script := flag.String("script", "", "JSON file with the replies, in order")
	record := flag.String("record", "", "write the received requests to this file on exit")
	flag.Parse()
	if *script == "" {
		fmt.Fprintln(os.Stderr, "scripted-llm: -script FILE is required")
		os.Exit(2)
	}
	b, err := os.ReadFile(*script)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scripted-llm:", err)
		os.Exit(1)
	}
	var replies []llmtest.Reply
	if err := json.Unmarshal(b, &replies); err != nil {
		fmt.Fprintf(os.Stderr, "scripted-llm: %s: %v\n", *script, err)
		os.Exit(1)
	}
	srv, err := llmtest.Listen(*addr, replies...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scripted-llm:", err)
		os.Exit(1)
	}
	fmt.Printf("base_url=%s\n", srv.BaseURL())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	<-sigs
	srv.Close()
	if *record != "" {
		out, _ := json.MarshalIndent(srv.Requests(), "", "  ")
		if err := os.WriteFile(*record, out, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "scripted-llm:", err)
			os.Exit(1)
		}
	}
}
