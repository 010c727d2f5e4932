// Package mcp connects mcpruntime to the Model Context Protocol in both
// directions.
//
// As a client, a Hub launches the MCP servers of runtime.hcl
// (`mcp_server "NAME" { command = [...] }`) over stdio, lists their tools,
// generates an importable Python package of stubs for them (`from
// tools.files import read_file`) and answers the sandbox's call_tool host
// calls (it implements bridge.Tools).
//
// As a server, NewServer exposes a session.Manager as MCP tools
// (execute_python, list_sessions, close_session, list_skills) for
// `mcpruntime mcp`, which speaks MCP on its standard input and output.
package mcp
