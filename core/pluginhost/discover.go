// Package pluginhost finds sandbox plugin executables, launches them with
// go-plugin, configures them from runtime.hcl, restarts them when they
// crash, and stops them (and everything they started) on shutdown.
package pluginhost

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/mcpruntime/mcpruntime/sdk"
)

// Found is a plugin executable on disk.
type Found struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// sidecar matches the endings of files kept beside a plugin that are not
// plugins: checksums, signatures, notes, editors' and package managers'
// backups (mcpruntime-plugin-wasm.sha256 is no backend "wasm.sha256").
var sidecar = regexp.MustCompile(`(?i)(\.(sha1|sha256|sha512|md5|sum|sig|asc|pem|minisig|md|txt|json|ya?ml|toml|hcl|log|bak|old|orig|rej|tmp|swp|dpkg-[a-z]+|rpm[a-z]+)|~)$`)

// Discover lists the plugin executables in dir: files named
// mcpruntime-plugin-NAME, except the sidecar files beside them (checksums,
// signatures, notes, backups). A missing dir yields none.
func Discover(dir string) ([]Found, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("plugin dir %s: %w", dir, err)
	}
	var out []Found
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), sdk.BinaryPrefix)
		if !ok || name == "" || e.IsDir() || sidecar.MatchString(name) {
			continue
		}
		out = append(out, Found{Name: name, Path: filepath.Join(dir, e.Name())})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// NotFoundError says a backend has no plugin executable.
type NotFoundError struct {
	Name      string
	Dir       string
	Available []string
}

func (e *NotFoundError) Error() string {
	msg := fmt.Sprintf("unknown backend %q: no %s%s in %s", e.Name, sdk.BinaryPrefix, e.Name, e.Dir)
	if len(e.Available) > 0 {
		msg += " (available: " + strings.Join(e.Available, ", ") + ")"
	} else {
		msg += " (no plugins found there; run `make build`, or set runtime { plugin_dir = ... })"
	}
	return msg
}

// Resolve finds the executable for a backend: the sandbox block's explicit
// plugin path, else plugin_dir/mcpruntime-plugin-NAME.
func Resolve(name, explicit, dir string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	path := filepath.Join(dir, sdk.BinaryPrefix+name)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	found, _ := Discover(dir)
	nf := &NotFoundError{Name: name, Dir: dir}
	for _, f := range found {
		nf.Available = append(nf.Available, f.Name)
	}
	return "", nf
}
