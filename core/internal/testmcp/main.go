// Command testmcp is a small MCP server over stdio for mcpruntime's tests.
//
// Tools: add(a, b), echo(text, shout=False), fail(), stats(numbers) with
// structured output, getenv(name), sleep(ms), spawn_child() (starts a
// long-lived child process and returns its pid), crash() (writes to stderr
// and exits 7 while the call is in flight), pid() (the server's pid), and
// odd_names(...) whose names exercise stub sanitizing.
//
// TESTMCP_MODE changes its behaviour for failure tests: "crash" writes to
// stderr and exits 3 before answering; "hang" reads stdin but never answers.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

func main() {
	switch os.Getenv("TESTMCP_MODE") {
	case "crash":
		fmt.Fprintln(os.Stderr, "testmcp: cannot open the frobnicator")
		os.Exit(3)
	case "hang":
		_, _ = io.Copy(io.Discard, os.Stdin)
		return
	}
	s := server.NewMCPServer("testmcp", "1.0.0", server.WithToolCapabilities(false))
	addTools(s)
	if err := server.ServeStdio(s); err != nil {
		fmt.Fprintln(os.Stderr, "testmcp:", err)
		os.Exit(1)
	}
}

func addTools(s *server.MCPServer) {
	s.AddTool(mcp.NewTool("add",
		mcp.WithDescription("Add two integers."),
		mcp.WithInteger("a", mcp.Required(), mcp.Description("first addend")),
		mcp.WithInteger("b", mcp.Required(), mcp.Description("second addend")),
	), func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		a, err := req.RequireInt("a")
		if err != nil {
			return mcp.NewToolResultError(err.Error()), nil
		}
		b, err := req.RequireInt("b")
		if err != nil {
			return mcp.NewToolResultError(err.Error()), nil
		}
		return mcp.NewToolResultText(fmt.Sprint(a + b)), nil
	})

	s.AddTool(mcp.NewTool("echo",
		mcp.WithDescription("Echo text back.\n\nA second paragraph that the prompt listing leaves out."),
		mcp.WithString("text", mcp.Required(), mcp.Description("what to echo")),
		mcp.WithBoolean("shout", mcp.Description("upper-case it"), mcp.DefaultBool(false)),
	), func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		text := req.GetString("text", "")
		if req.GetBool("shout", false) {
			text = strings.ToUpper(text)
		}
		return mcp.NewToolResultText(text), nil
	})

	s.AddTool(mcp.NewTool("fail", mcp.WithDescription("Always fails.")),
		func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultError("something broke"), nil
		})

	type stats struct {
		Count int     `json:"count"`
		Sum   float64 `json:"sum"`
	}
	s.AddTool(mcp.NewTool("stats",
		mcp.WithDescription("Count and sum numbers."),
		mcp.WithArray("numbers", mcp.Required(), mcp.Description("the numbers"), mcp.WithNumberItems()),
		mcp.WithOutputSchema[stats](),
	), func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		var st stats
		for _, v := range req.GetFloatSlice("numbers", nil) {
			st.Count++
			st.Sum += v
		}
		return mcp.NewToolResultStructured(st, fmt.Sprintf("%d numbers, sum %g", st.Count, st.Sum)), nil
	})

	s.AddTool(mcp.NewTool("getenv",
		mcp.WithDescription("Return an environment variable of the server."),
		mcp.WithString("name", mcp.Required()),
	), func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText(os.Getenv(req.GetString("name", ""))), nil
	})

	s.AddTool(mcp.NewTool("sleep",
		mcp.WithDescription("Sleep, then answer."),
		mcp.WithInteger("ms", mcp.Required()),
	), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		select {
		case <-time.After(time.Duration(req.GetInt("ms", 0)) * time.Millisecond):
		case <-ctx.Done():
		}
		return mcp.NewToolResultText("awake"), nil
	})

	s.AddTool(mcp.NewTool("spawn_child", mcp.WithDescription("Start a long-lived child process; returns its pid.")),
		func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			cmd := exec.Command("sleep", "300")
			if err := cmd.Start(); err != nil {
				return mcp.NewToolResultError(err.Error()), nil
			}
			go cmd.Wait()
			return mcp.NewToolResultText(fmt.Sprint(cmd.Process.Pid)), nil
		})

	s.AddTool(mcp.NewTool("crash", mcp.WithDescription("Exit the server in the middle of the call.")),
		func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			fmt.Fprintln(os.Stderr, "testmcp: crashing on purpose")
			os.Exit(7)
			return nil, nil
		})

	s.AddTool(mcp.NewTool("pid", mcp.WithDescription("Return the server's process id.")),
		func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(fmt.Sprint(os.Getpid())), nil
		})

	s.AddTool(mcp.NewTool("odd-name.v2",
		mcp.WithDescription(`Names that are not Python identifiers; quotes """ and \ backslashes.`),
		mcp.WithString("from", mcp.Required(), mcp.Description("a keyword")),
		mcp.WithString("2nd-value", mcp.Description("starts with a digit")),
		mcp.WithString("_call", mcp.Description("clashes with the stub helper")),
		mcp.WithAny("anything"),
	), func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		args := req.GetArguments()
		keys := make([]string, 0, len(args))
		for k := range args {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return mcp.NewToolResultText(strings.Join(keys, ",")), nil
	})
}
