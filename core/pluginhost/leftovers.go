package pluginhost

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mcpruntime/mcpruntime/sdk/owner"
)

// StateDir is the state directory the host hands backend's plugin (its
// sdk.Config.StateDir).
func StateDir(stateDir, backend string) string { return filepath.Join(stateDir, "plugins", backend) }

// OwnersDir is the sdk/owner directory in backend's plugin state
// directory, where plugin processes claim the owner ids they name what
// they create after.
func OwnersDir(stateDir, backend string) string {
	return filepath.Join(StateDir(stateDir, backend), "owners")
}

// DeadOwners lists the owner ids in backend's plugin state directory
// (its owners directory, sdk/owner) whose process is gone: plugin
// processes that died, SIGKILL included, without removing what they
// owned. A plugin removes such leftovers in the sweep it starts when it is
// configured, so a core that finds some starts that plugin (see the
// session daemon's start-up). A backend whose plugin keeps its owners
// elsewhere (outside the state dir) shows none here.
func DeadOwners(stateDir, backend string) ([]string, error) {
	dir := OwnersDir(stateDir, backend)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("owners of %s: %w", backend, err)
	}
	var dead []string
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".lock")
		if !ok || !owner.ValidID(id) {
			continue
		}
		if !owner.Alive(dir, id) {
			dead = append(dead, id)
		}
	}
	return dead, nil
}
