package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/mcpruntime/mcpruntime/core/pluginhost"
	"github.com/mcpruntime/mcpruntime/sdk/owner"
)

// Plugins name what they create after the owner id they claim in an owners
// directory of their state dir (sdk/owner): wasm's run dirs are
// <state>/run-<id>, beside <state>/owners/<id>.lock. An id whose lock no
// process holds belongs to a dead plugin process; the plugin removes such
// leftovers in the sweep it starts when it is next configured. doctor only
// reports them: it removes nothing and looks at this instance's state dir
// only (containers and VMs a plugin keeps elsewhere are its own to report).

// ownerIDIn finds an owner id (sdk/owner's "<pid>-<12 letters>") in a name.
var ownerIDIn = regexp.MustCompile(`(?:^|[^0-9a-z])([0-9]+-[a-z]{12})(?:$|[^a-z])`)

// leftoverChecks reports, per backend, what dead plugin processes left in
// the state dir: a warning with the fix, or nothing when there is none.
func leftoverChecks(stateDir string) []check {
	root := filepath.Join(stateDir, "plugins")
	ents, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return []check{{Name: "leftovers", OK: true, Warn: true, Info: err.Error(), Fix: "make the state dir readable"}}
	}
	var out []check
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		backend := e.Name()
		found, err := deadLeftovers(stateDir, backend)
		switch {
		case err != nil:
			out = append(out, check{Name: "leftovers " + backend, OK: true, Warn: true, Info: err.Error()})
		case len(found) > 0:
			out = append(out, check{Name: "leftovers " + backend, OK: true, Warn: true,
				Info: fmt.Sprintf("%d left by dead %s plugin processes: %s", len(found), backend, strings.Join(found, ", ")),
				Fix: fmt.Sprintf("they are removed when the %s plugin next starts with this state dir "+
					"(`mcpruntime exec --backend %s -c pass` starts it); a plugin that keeps failing to remove them logs why "+
					"(`mcpruntime --log-level debug exec --backend %s -c pass`)", backend, backend, backend)})
		}
	}
	return out
}

// deadLeftovers lists the entries of backend's plugin state dir that name
// an owner id whose owner is dead, and the dead owners' lock files, sorted.
func deadLeftovers(stateDir, backend string) ([]string, error) {
	dir, owners := pluginhost.StateDir(stateDir, backend), pluginhost.OwnersDir(stateDir, backend)
	alive := map[string]bool{}
	isDead := func(id string) bool {
		live, ok := alive[id]
		if !ok {
			live = owner.Alive(owners, id)
			alive[id] = live
		}
		return !live
	}
	var found []string
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("leftovers: %w", err)
	}
	for _, e := range ents {
		if filepath.Join(dir, e.Name()) == owners {
			continue
		}
		if m := ownerIDIn.FindStringSubmatch(e.Name()); m != nil && isDead(m[1]) {
			kind := "file"
			if e.IsDir() {
				kind = "dir"
			}
			found = append(found, fmt.Sprintf("%s (%s)", filepath.Join(dir, e.Name()), kind))
		}
	}
	dead, err := pluginhost.DeadOwners(stateDir, backend)
	if err != nil {
		return nil, fmt.Errorf("leftovers: %w", err)
	}
	for _, id := range dead {
		found = append(found, fmt.Sprintf("owner %s (lock file)", id))
	}
	sort.Strings(found)
	return found, nil
}
