package daemon

import (
	"context"
	"errors"
	"path/filepath"
	"sort"

	"github.com/hashicorp/go-hclog"

	"github.com/mcpruntime/mcpruntime/core/config"
	"github.com/mcpruntime/mcpruntime/core/internal/sessionreg"
	"github.com/mcpruntime/mcpruntime/core/pluginhost"
	"github.com/mcpruntime/mcpruntime/core/session"
)

// Registry kinds: the session daemon and `mcpruntime serve` keep their
// sessions apart (a project may run both).
const (
	KindDaemon = "daemon"
	KindServer = "server"
)

// RegistryDir is where the serving process of kind keeps its session
// registry.
func RegistryDir(cfg *config.Config, kind string) string {
	return filepath.Join(cfg.StateDir, "sessions", kind)
}

// adopt opens the session registry of kind and hands it to m, which takes
// over the sessions a previous process of that kind left; then it starts,
// in the background, the plugins with something to clean up or recover
// (see startLeftovers). Without the registry (another process of the same
// kind serves this project) sessions last as long as this process, as
// before: that is logged, not fatal.
func adopt(ctx context.Context, cfg *config.Config, m *session.Manager, kind string, logger hclog.Logger) {
	who := "session daemon"
	if kind == KindServer {
		who = "server"
	}
	reg, err := sessionreg.Open(RegistryDir(cfg, kind))
	if err != nil {
		if errors.Is(err, sessionreg.ErrBusy) {
			logger.Warn("another process keeps this project's sessions; this one's sessions end with it", "registry", RegistryDir(cfg, kind))
		} else {
			logger.Error("session registry unusable; sessions end with this process", "error", err)
		}
		return
	}
	if err := m.UseRegistry(reg, who); err != nil {
		logger.Warn("session registry: some records were skipped", "error", err)
	}
	counts := map[string]int{}
	for _, s := range m.List() {
		counts[s.State()]++
	}
	if len(counts) > 0 {
		logger.Info("sessions of the previous process", "live_when_it_died", counts[session.StatePending],
			"hibernated", counts[session.StateHibernated], "lost", counts[session.StateLost])
	}
	startLeftovers(ctx, cfg, m, logger)
}

// startLeftovers starts, in the background, the plugin of every backend
// that has sessions a dead predecessor left live (their plugin is offered
// them for recovery as it starts) or whose state dir holds dead plugin
// processes' leftovers: a plugin sweeps what dead owners left when it is
// configured, so the leftovers of a crash go within seconds of the restart
// rather than whenever the backend is next used. The recovery offer comes
// first (it runs as the plugin starts, before anyone uses it), so the
// sweep does not take what could be recovered (a plugin keeps a dead
// owner's session sandboxes for its recovery grace).
func startLeftovers(ctx context.Context, cfg *config.Config, m *session.Manager, logger hclog.Logger) {
	start := map[string]string{}
	for _, s := range m.List() {
		if s.State() == session.StatePending {
			start[s.Backend] = "sessions to recover"
		}
	}
	names := []string{cfg.Backend}
	for name := range cfg.Sandboxes {
		names = append(names, name)
	}
	for _, name := range names {
		if _, ok := start[name]; ok {
			continue
		}
		dead, err := pluginhost.DeadOwners(cfg.StateDir, name)
		if err != nil {
			logger.Warn("look for leftovers of dead plugin processes", "backend", name, "error", err)
			continue
		}
		if len(dead) > 0 {
			start[name] = "leftovers of dead plugin processes"
		}
	}
	backends := make([]string, 0, len(start))
	for b := range start {
		backends = append(backends, b)
	}
	sort.Strings(backends)
	for _, b := range backends {
		logger.Info("starting plugin at start-up", "backend", b, "why", start[b])
		go func() {
			if _, err := m.Backend(context.WithoutCancel(ctx), b); err != nil {
				logger.Warn("start plugin at start-up", "backend", b, "error", err)
			}
		}()
	}
}
