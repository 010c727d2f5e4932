package mcp

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/internal/atomicfile"
)

// listCache keeps each server's last tool list on disk, so that stubs and
// the prompt listing exist before (and without) starting the server. An
// entry is keyed by a hash of what decides which server runs: its command
// or url and the names (not values) of its environment and headers; a
// server that answers with another list rewrites it.
type listCache struct {
	dir string
}

// cachedListing is a cache file.
type cachedListing struct {
	Server string     `json:"server"`
	Tools  []mcp.Tool `json:"tools"`
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

func (c *listCache) path(s config.MCPServer) string {
	key := struct {
		Name     string
		Command  []string
		URL      string
		Env      []string
		PassEnv  []string
		Headers  []string
		Protocol string
	}{s.Name, s.Command, s.URL, keys(s.Env), s.PassEnv, keys(s.Headers), mcp.LATEST_PROTOCOL_VERSION}
	b, _ := json.Marshal(key)
	sum := sha256.Sum256(b)
	return filepath.Join(c.dir, unsafeName.ReplaceAllString(s.Name, "_")+"-"+hex.EncodeToString(sum[:8])+".json")
}

// load returns the cached tool list of s, if there is one.
func (c *listCache) load(s config.MCPServer) ([]mcp.Tool, bool) {
	if c == nil {
		return nil, false
	}
	b, err := os.ReadFile(c.path(s))
	if err != nil {
		return nil, false
	}
	var l cachedListing
	if err := json.Unmarshal(b, &l); err != nil || l.Server != s.Name {
		return nil, false
	}
	return l.Tools, true
}

// save records the tool list of s.
func (c *listCache) save(s config.MCPServer, tools []mcp.Tool) error {
	if c == nil {
		return nil
	}
	b, err := json.Marshal(cachedListing{Server: s.Name, Tools: tools})
	if err != nil {
		return fmt.Errorf("encode tool list: %w", err)
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("tool list cache: %w", err)
	}
	if err := atomicfile.WriteBytes(c.path(s), b, 0o600); err != nil {
		return fmt.Errorf("tool list cache: %w", err)
	}
	return nil
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
