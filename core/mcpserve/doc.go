// Package mcpserve is mcpruntime as an MCP server: the tools an MCP client
// calls (execute_python, list_sessions, close_session, list_skills) over a
// session.Manager, served on stdio (`mcpruntime mcp --local`), as a
// streamable HTTP handler (mounted at /mcp by `serve` and by the session
// daemon), and a stdio relay that lets `mcpruntime mcp` speak for the
// daemon's /mcp so that MCP sessions are the workspace's sessions. Live
// output reaches clients as progress notifications, ask_llm falls back to
// the client's sampling, and results are capped with head and tail kept.
//
// The MCP client side (servers that sandbox code calls) is package mcp.
package mcpserve
