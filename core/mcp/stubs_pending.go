package mcp

import (
	"bytes"
	"fmt"
)

// writePending gives the module of a server whose tool list is not known
// yet (it is starting in the background, or could not start) a module
// __getattr__: any tool name imports as a function that calls the tool by
// that name, which starts the server if needed. Code written against the
// server's documented tools works in a session opened before the listing
// arrived; a call to an unavailable server raises with the reason.
func writePending(b *bytes.Buffer, m stubModule) {
	fmt.Fprintf(b, `

_PENDING = %s


def __getattr__(name):
    """The tool list of MCP server %s is not known yet (%s).

    Any tool imports by its name, as a function taking keyword arguments
    that calls the tool on the server (starting it if needed).
    """
    if name.startswith("__"):
        raise AttributeError(name)

    def tool(**kwargs):
        return _call(name, kwargs)

    tool.__name__ = tool.__qualname__ = name
    tool.__doc__ = "MCP tool %%s of server %%s (not listed yet: %%s)." %% (name, _SERVER, _PENDING)
    return tool
`, pyString(m.pending), docEscape(m.server), docEscape(m.pending))
}
