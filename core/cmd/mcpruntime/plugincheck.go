package main

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/pluginhost"
	"github.com/mcpruntime/mcpruntime/sdk"
	"github.com/mcpruntime/mcpruntime/sdk/host"
)

// pluginStatus is what `plugins list` and `doctor` found out about one
// plugin executable: its info when it works, else the problem and its fix.
type pluginStatus struct {
	pluginhost.Found
	Info *sdk.Info `json:"info,omitempty"`
	// Protocol is the plugin protocol version negotiated with it.
	Protocol int    `json:"protocol,omitempty"`
	Error    string `json:"error,omitempty"`
	Fix      string `json:"fix,omitempty"`
}

// Broken reports whether the plugin cannot serve.
func (s *pluginStatus) Broken() bool { return s.Error != "" }

// probeTimeout bounds one plugin's probe (its handshake has its own,
// shorter deadline: host.DefaultStartTimeout).
const probeTimeout = 30 * time.Second

// rebuildFix is the fix for a plugin binary that is damaged.
const rebuildFix = "rebuild it (`make build` for this repository's plugins) or reinstall it; remove it if it is not a plugin"

// checkPlugins inspects each plugin and, when the file looks sound, starts
// it, shakes hands and asks for its info; all at once, so one hung plugin
// costs its deadline once.
func checkPlugins(ctx context.Context, found []pluginhost.Found) []pluginStatus {
	out := make([]pluginStatus, len(found))
	var wg sync.WaitGroup
	for i, f := range found {
		out[i].Found = f
		wg.Add(1)
		go func() {
			defer wg.Done()
			checkPlugin(ctx, &out[i])
		}()
	}
	wg.Wait()
	return out
}

func checkPlugin(ctx context.Context, s *pluginStatus) {
	if problem, fix := inspectPlugin(s.Path); problem != "" {
		s.Error, s.Fix = problem, fix
		return
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	info, protocol, err := pluginhost.Probe(ctx, s.Path)
	if err != nil {
		s.Error, s.Fix = err.Error(), probeFix(err)
		return
	}
	s.Info, s.Protocol = info, protocol
}

// probeFix is the fix for a plugin that failed to start or answer.
func probeFix(err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, host.ErrIncompatibleProtocol):
		return "rebuild it against this sdk (`make build` for this repository's plugins), or remove it"
	case strings.Contains(msg, "no handshake within"):
		return "it does not speak the plugin handshake: remove it if it is not a plugin, else rebuild it; `mcpruntime --log-level debug plugins list` shows its output"
	case strings.Contains(msg, "not executable"):
		return "chmod +x it, or remove it if it is not a plugin"
	default:
		return rebuildFix + "; `mcpruntime --log-level debug plugins list` shows its output"
	}
}

// inspectPlugin checks a plugin file without running it: that it is an
// executable this host can run, and whole. It returns the problem and its
// fix, or "" when the file looks sound.
func inspectPlugin(path string) (problem, fix string) {
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return err.Error(), "remove it (a dangling link or unreadable file is no plugin)"
	case !st.Mode().IsRegular():
		return "not a regular file", "remove it"
	case st.Mode()&0o111 == 0:
		return "not executable", fmt.Sprintf("chmod +x %s, or remove it if it is not a plugin", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return err.Error(), "make it readable, or remove it"
	}
	defer f.Close()
	head := make([]byte, 4)
	if _, err := io.ReadFull(f, head); err != nil {
		return fmt.Sprintf("not an executable: %d bytes long", st.Size()), rebuildFix
	}
	switch {
	case bytes.HasPrefix(head, []byte("#!")):
		return "", ""
	case !bytes.Equal(head, []byte(elf.ELFMAG)):
		return "not an executable: neither an ELF binary nor a #! script", rebuildFix
	}
	ef, err := elf.NewFile(f)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Sprintf("truncated: its ELF headers point past its end (%d bytes)", st.Size()),
			"rebuild it (`make build`); an interrupted build or copy leaves a truncated binary"
	}
	if err != nil {
		return fmt.Sprintf("corrupt ELF binary: %v", err), rebuildFix
	}
	defer ef.Close()
	if want, ok := elfMachine[runtime.GOARCH]; ok && ef.Machine != want {
		return fmt.Sprintf("built for %s, this host is %s", ef.Machine, runtime.GOARCH), "rebuild it on (or for) this host: `make build`"
	}
	if need := elfExtent(ef); need > st.Size() {
		return fmt.Sprintf("truncated: %d bytes, its ELF headers describe %d", st.Size(), need),
			"rebuild it (`make build`); an interrupted build or copy leaves a truncated binary"
	}
	return "", ""
}

// elfMachine is the ELF machine of each GOARCH this inspects.
var elfMachine = map[string]elf.Machine{
	"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "386": elf.EM_386, "arm": elf.EM_ARM,
	"riscv64": elf.EM_RISCV, "ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390, "loong64": elf.EM_LOONGARCH,
}

// elfExtent is how long the file must be for everything its headers
// describe to be in it.
func elfExtent(ef *elf.File) int64 {
	var end uint64
	for _, p := range ef.Progs {
		end = max(end, p.Off+p.Filesz)
	}
	for _, s := range ef.Sections {
		if s.Type != elf.SHT_NOBITS {
			end = max(end, s.Offset+s.FileSize)
		}
	}
	return int64(end)
}

// indent indents the continuation lines of a multi-line message (go-plugin's
// errors span several) to sit under its first.
func indent(msg string) string {
	return strings.ReplaceAll(strings.TrimRight(msg, "\n"), "\n", "\n  ")
}

// checkBackend reports a default backend runtime.hcl names that no plugin
// provides, at its place in the file (a configuration error).
func checkBackend(cfg *config.Config) error {
	found, err := pluginhost.Discover(cfg.PluginDir)
	if err != nil {
		// An unreadable plugin_dir is reported where a plugin is needed.
		return nil
	}
	names := make([]string, len(found))
	for i, f := range found {
		names[i] = f.Name
	}
	return cfg.CheckBackend(names)
}
