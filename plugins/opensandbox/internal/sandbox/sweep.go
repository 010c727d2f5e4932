package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"

	"github.com/mcpruntime/mcpruntime/sdk/owner"
)

// Ownership. Each plugin process claims an owner id (sdk/owner) in
// ownersDir and holds its lock for its whole life. Everything it creates
// names that id: containers carry it in labelInstance and in their id
// (osb-<owner>-<n>, osb-<owner>-anchor-<n>), so do slots (named after
// their container) and the FIFO directory (fifo/<owner>); the shim group
// is osb-<owner>. The sweep removes a resource only when its owner's lock
// can be taken, i.e. the owner is dead, never from a PID.
//
// Resources from before owner ids (label mcpruntime.opensandbox/owner =
// "pid:start-time", names osb-<pid>-<n>): a container goes when the exact
// process of its label (pid and start time) no longer runs; a slot without
// a container goes unless its pid is a running opensandbox plugin; a FIFO
// directory <pid>-<start-time> goes when that exact process no longer
// runs. Containers without any owner label are not ours to judge: they
// are left and logged.

// ownersDir holds the owner locks of every opensandbox plugin process on
// the host (all namespaces).
const ownersDir = runDir + "/owners"

var (
	// newName is a slot or container name of an owner id:
	// osb-<pid>-<12 letters>-<n> or osb-<pid>-<12 letters>-anchor-<n>.
	newName = regexp.MustCompile(`^osb-([0-9]+-[a-z]{12})-(?:anchor-)?[0-9]+$`)
	// legacyName is a name of the pid scheme.
	legacyName = regexp.MustCompile(`^osb-([0-9]+)-(?:anchor-)?[0-9]+$`)
	// legacyFIFO is a FIFO directory of the pid scheme: <pid>-<start>.
	legacyFIFO = regexp.MustCompile(`^([0-9]+)-([0-9]+)$`)
)

// ownerOfName is the owner id a container or slot name carries.
func ownerOfName(name string) (string, bool) {
	m := newName.FindStringSubmatch(name)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// sweeper runs the sweep in the background from newEngine, again when a
// session container it kept for recovery is due, until the engine closes.
func (e *engine) sweeper() {
	for {
		next := e.sweep(e.ctx)
		if next <= 0 {
			return
		}
		select {
		case <-e.ctx.Done():
			return
		case <-time.After(next):
		}
	}
}

// sweep removes what dead plugin processes left in the namespace:
// containers, their tasks, slots (with their mounts), FIFO directories,
// then dead owners' lock files. What live owners have, this process
// included, is not touched. A dead owner's session containers are kept for
// their recovery grace (see recover.go); sweep returns when the next of
// those is due (0: none).
func (e *engine) sweep(ctx context.Context) (next time.Duration) {
	start := time.Now()
	ctrs, err := e.client.Containers(ctx)
	if err != nil {
		e.log.Warn("sweep: list containers", "error", err)
		return 0
	}
	byOwner := map[string][]client.Container{} // owner id -> its containers
	exists := map[string]bool{}                // container ids
	// Containers without an owner id that stay (a live pid-scheme owner,
	// a failed removal, no owner label at all): their slots stay too.
	kept := map[string]bool{}
	legacyRemoved := 0
	for _, c := range ctrs {
		exists[c.ID()] = true
		// The listing's metadata: no round trip per container.
		info, err := c.Info(ctx, client.WithoutRefreshedMetadata)
		if err != nil {
			kept[c.ID()] = true
			e.log.Warn("sweep: container labels", "container", c.ID(), "error", err)
			continue
		}
		labels := info.Labels
		if id := labels[labelInstance]; id != "" {
			if id != e.owner {
				byOwner[id] = append(byOwner[id], c)
			}
			continue
		}
		if old := labels[labelOwner]; old != "" {
			if ownerAlive(old) {
				kept[c.ID()] = true
				continue
			}
			if err := removeContainer(ctx, c); err != nil {
				kept[c.ID()] = true
				e.log.Warn("sweep: remove container of a dead plugin", "container", c.ID(), "owner", old, "error", err)
				continue
			}
			legacyRemoved++
			continue
		}
		kept[c.ID()] = true
		e.log.Warn("sweep: container without an owner label left alone", "container", c.ID(), "namespace", e.s.Namespace)
	}

	// Owners of slots and FIFO directories too: an owner killed between
	// making a slot and creating its container left no container.
	slotsByOwner := map[string][]string{}
	slotEnts, err := os.ReadDir(e.slots)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		e.log.Warn("sweep: list slots", "error", err)
	}
	for _, d := range slotEnts {
		name := d.Name()
		if id, ok := ownerOfName(name); ok {
			// A slot whose container exists goes with it: the container
			// may have been taken over by another owner (recover.go).
			if id != e.owner && !exists[name] {
				slotsByOwner[id] = append(slotsByOwner[id], name)
			}
			continue
		}
		if m := legacyName.FindStringSubmatch(name); m != nil {
			// A slot whose container was just removed goes; one without a
			// container goes unless its pid is a running plugin (which may
			// be about to create the container).
			if kept[name] || (!exists[name] && pluginRunning(m[1])) {
				continue
			}
			if err := removeSlot(filepath.Join(e.slots, name)); err != nil {
				e.log.Warn("sweep: remove slot of a dead plugin", "slot", name, "error", err)
			}
		}
	}
	fifoRoot := filepath.Dir(e.fifos)
	fifoOwners := map[string]bool{}
	fifoEnts, err := os.ReadDir(fifoRoot)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		e.log.Warn("sweep: list FIFO directories", "error", err)
	}
	for _, d := range fifoEnts {
		name := d.Name()
		if owner.ValidID(name) {
			if name != e.owner {
				fifoOwners[name] = true
			}
			continue
		}
		if m := legacyFIFO.FindStringSubmatch(name); m != nil && !ownerAlive(m[1]+":"+m[2]) {
			if err := os.RemoveAll(filepath.Join(fifoRoot, name)); err != nil {
				e.log.Warn("sweep: remove FIFO directory of a dead plugin", "dir", name, "error", err)
			}
		}
	}

	ids := map[string]bool{}
	for id := range byOwner {
		ids[id] = true
	}
	for id := range slotsByOwner {
		ids[id] = true
	}
	for id := range fifoOwners {
		ids[id] = true
	}
	reaped := 0
	for id := range ids {
		if !owner.ValidID(id) {
			e.log.Warn("sweep: malformed owner label left alone", "owner", id)
			continue
		}
		if ctx.Err() != nil {
			return 0
		}
		dead, err := owner.Reap(ownersDir, id, func() error {
			due, err := e.removeOwned(ctx, id, byOwner[id], slotsByOwner[id], fifoOwners[id])
			if due > 0 && (next == 0 || due < next) {
				next = due
			}
			return err
		})
		if err != nil {
			e.log.Warn("sweep: leftovers of a dead plugin process", "owner", id, "error", err)
		}
		if dead {
			reaped++
			e.log.Info("swept the leftovers of a dead plugin process", "owner", id, "containers", len(byOwner[id]), "slots", len(slotsByOwner[id]), "namespace", e.s.Namespace)
		}
	}
	if _, err := owner.Sweep(ownersDir); err != nil {
		e.log.Warn("sweep: owner locks", "error", err)
	}
	if reaped > 0 || legacyRemoved > 0 {
		e.log.Info("sweep done", "dead_owners", reaped, "legacy_containers", legacyRemoved, "namespace", e.s.Namespace, "took", time.Since(start).String())
	}
	if next > 0 {
		// A moment late: the grace must be over when the next sweep looks.
		next += 100 * time.Millisecond
		e.log.Info("sweep: session containers of dead plugin processes kept for recovery", "next_sweep_in", next.String())
	}
	return next
}

// removeOwned removes a dead owner's containers (with their slots), slots
// and FIFO directory. It runs under the owner's lock and reads each
// container's labels again: a container taken over meanwhile (recover.go)
// is no longer the dead owner's. Session containers within their recovery
// grace stay; due says when the first of them is due (0: none).
func (e *engine) removeOwned(ctx context.Context, id string, ctrs []client.Container, slots []string, fifo bool) (due time.Duration, _ error) {
	var errs []error
	now := time.Now()
	for _, c := range ctrs {
		slot := slotPaths{root: filepath.Join(e.slots, c.ID())}
		info, err := c.Info(ctx)
		if err == nil && info.Labels[labelInstance] != id {
			continue
		}
		if err == nil {
			if rec, ok := readRecord(slot); ok && rec.Grace > 0 {
				since, serr := orphanedSince(slot, now)
				if serr != nil {
					e.log.Warn("sweep: orphaned session container", "container", c.ID(), "error", serr)
				}
				if left := since.Add(rec.Grace).Sub(now); left > 0 {
					if due == 0 || left < due {
						due = left
					}
					continue
				}
			}
		} else if !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("container %s: %w", c.ID(), err))
			continue
		}
		if err := removeContainer(ctx, c); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := removeSlot(slot.root); err != nil {
			errs = append(errs, fmt.Errorf("remove slot %s: %w", c.ID(), err))
		}
	}
	for _, s := range slots {
		if err := removeSlot(filepath.Join(e.slots, s)); err != nil {
			errs = append(errs, fmt.Errorf("remove slot %s: %w", s, err))
		}
	}
	if fifo {
		if err := os.RemoveAll(filepath.Join(filepath.Dir(e.fifos), id)); err != nil {
			errs = append(errs, fmt.Errorf("remove FIFO directory: %w", err))
		}
	}
	return due, errors.Join(errs...)
}

// removeContainer kills and deletes a container's task, then the container.
func removeContainer(ctx context.Context, c client.Container) error {
	if t, err := c.Task(ctx, nil); err == nil {
		// If this fails, Delete(WithProcessKill) below kills it again.
		_ = t.Kill(ctx, syscall.SIGKILL)
		if ch, err := t.Wait(ctx); err == nil {
			select {
			case <-ch:
			case <-time.After(5 * time.Second):
			}
		}
		if _, err := t.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			if _, err := t.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
				return fmt.Errorf("delete task of container %s: %w", c.ID(), err)
			}
		}
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("task of container %s: %w", c.ID(), err)
	}
	if err := c.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: %w", c.ID(), err)
	}
	return nil
}

// pluginRunning reports whether pid is a running opensandbox plugin (for
// slots of the pid scheme, which name nothing else).
func pluginRunning(pid string) bool {
	n, err := strconv.Atoi(pid)
	if err != nil || n <= 0 {
		return false
	}
	exe, err := os.Readlink("/proc/" + pid + "/exe")
	if err != nil {
		// Gone, or not ours to read: only a missing process counts as gone.
		return !errors.Is(err, os.ErrNotExist)
	}
	return strings.Contains(filepath.Base(exe), "opensandbox")
}
