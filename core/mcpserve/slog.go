package mcpserve

import (
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// newSlog adapts logger for mcp-go's HTTP transport, which logs through
// slog: its warnings and errors reach logger as warnings.
func newSlog(logger hclog.Logger) *slog.Logger {
	w := logger.Named("http").StandardWriter(&hclog.StandardLoggerOptions{ForceLevel: hclog.Warn})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
