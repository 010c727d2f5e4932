package agent

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/watch"
)

// A pooled VM gets its session's workspace as a prebuilt image on its
// second workspace disk, the slot: the host points the slot at the image
// while the VM runs, and the agent mounts it in the workspace's place
// (attachSlot), taking the image's manifest as what the host holds. The
// boot-time workspace disk is let go without being waited for: no
// unmount, no kernel moved out of it, on the session's first execution's
// path.

// attachSlot mounts the slot's file system (the host has swapped the
// session's image in) on the workspace, detaching the one there, and
// takes the image's manifest as the guest's record of what the host has
// (adoptManifest). Until the new file system is mounted aside, the
// workspace is untouched, so a failure there leaves a VM whose files the
// host sends.
func (f *files) attachSlot() (timing string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if slotDev == "" || ballast == nil {
		return "", errors.New("the VM has no free workspace disk slot")
	}
	t0 := time.Now()
	// The boot's probe of the slot cached its first blocks.
	if err := flushDevice(slotDev); err != nil {
		return "", err
	}
	t1 := time.Now()
	mf, nb, err := mountAside(slotDev, wsSlotTmp)
	if err != nil {
		return "", err
	}
	t2 := time.Now()
	f.awaitBaseline()
	f.lazy.abortUnder("")
	if f.w != nil {
		f.w.Close()
		f.w = nil
	}
	// Detached, not unmounted: the old file system ends in the
	// background once its last user (the waiting kernel's working
	// directory, until the session's configure frame) lets go.
	if err := unix.Unmount(workspaceDir, unix.MNT_DETACH); err != nil {
		nb.Close()
		mf.Close()
		return "", fmt.Errorf("detach the boot workspace: %w", err)
	}
	if err := bindWorkspace(wsSlotTmp, workspaceDir); err != nil {
		nb.Close()
		mf.Close()
		return "", err
	}
	// The old ballast's fd and the waiting kernel's working directory
	// hold the boot workspace's file system; its end (an unmount) is
	// left to the first scan, after the kernel has moved to the new one
	// (retireOld).
	f.retired, ballast, slotDev = ballast, nb, ""
	t3 := time.Now()
	f.adoptManifest(mf)
	return fmt.Sprintf("flush %s mount %s switch %s manifest+watch %s", t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), time.Since(t3)), nil
}

// adoptManifest starts watching the new workspace and takes the image's
// manifest (mf, nil if none) as what the host holds: the first scan then
// reports only what code changes. Without a watch or a manifest, the
// first scan walks the tree (and reports more, which the host compares).
func (f *files) adoptManifest(mf *os.File) {
	f.manifest, f.full = map[string]fileState{}, true
	w, err := watchWorkspace()
	if err != nil {
		logf("workspace changes not tracked, every scan walks it: %v", err)
		mf.Close()
		return
	}
	f.w = w
	if mf == nil {
		return // no manifest: the first scan walks the tree
	}
	r := bufio.NewReaderSize(mf, 64<<10)
	if set, perDir := w.(*watch.Set); perDir {
		// Each directory must be watched before code runs (a change
		// before its watch would be missed): its lines come first.
		if err := watchManifestDirs(set, r, f.manifest); err != nil {
			logf("workspace image manifest: %v", err) // the first scan walks
			mf.Close()
			f.manifest = map[string]fileState{}
			return
		}
	}
	f.full = false
	// The rest is read in the background once the session's first
	// execution is over (kickBaseline), at the lowest priority, and
	// waited for only by a scan that has something to compare
	// (awaitBaseline): code that changes nothing never pays for it.
	f.baseline, f.base = make(chan struct{}), map[string]fileState{}
	f.readBase = func(base map[string]fileState) {
		defer mf.Close()
		readManifestLines(r, base)
	}
}

// readManifestLines reads the rest of a manifest into base. A line not
// taken is reported as changed by the scan, and the host compares.
func readManifestLines(r *bufio.Reader, base map[string]fileState) {
	for {
		line, err := r.ReadString('\n')
		if line = strings.TrimSuffix(line, "\n"); line != "" {
			if e, perr := proto.ParseManifestLine(line); perr != nil {
				logf("workspace image manifest: %v", perr)
			} else {
				base[e.Rel] = manifestState(e)
			}
		}
		if err != nil {
			if err != io.EOF {
				logf("workspace image manifest: %v", err)
			}
			return
		}
	}
}

// manifestState is what a manifest line says the host has.
func manifestState(e proto.ManifestEntry) fileState {
	if e.Dir {
		return fileState{mode: fs.ModeDir | fs.FileMode(e.Perm)}
	}
	return fileState{size: e.Size, mtime: e.Mtime * 1e9, mode: fs.FileMode(e.Perm)}
}

// watchManifestDirs reads the manifest's directory lines (they come
// first) into manifest and watches each directory.
func watchManifestDirs(w *watch.Set, r *bufio.Reader, manifest map[string]fileState) error {
	if err := w.Add(workspaceDir, ""); err != nil {
		return err
	}
	for {
		if p, _ := r.Peek(2); string(p) != "d " {
			return nil
		}
		line, err := r.ReadString('\n')
		if err != nil && err != io.EOF {
			return err
		}
		e, err := proto.ParseManifestLine(strings.TrimSuffix(line, "\n"))
		if err != nil {
			return err
		}
		manifest[e.Rel] = manifestState(e)
		if err := w.Add(filepath.Join(workspaceDir, e.Rel), e.Rel); err != nil {
			return err
		}
	}
}

// kickBaseline starts the read of the image's manifest in the
// background, if it has not started.
func (f *files) kickBaseline() {
	read, base, done := f.readBase, f.base, f.baseline
	if read == nil {
		return
	}
	f.readBase = nil
	goIdle(func() {
		defer close(done)
		read(base)
	})
}

// retireOld lets go of the boot workspace's file system, replaced by a
// workspace image, once the kernel has left it (the first scan comes
// after the session's configure frame moved it): the last reference
// dropped unmounts it, in that thread.
func (f *files) retireOld() {
	if old := f.retired; old != nil {
		f.retired = nil
		goIdle(func() {
			if err := old.Close(); err != nil {
				logf("release the boot workspace: %v", err)
			}
		})
	}
}

// goIdle runs fn on a thread that runs only when nothing else would
// (SCHED_IDLE): the session's code runs meanwhile, on the same vCPU. The
// thread ends with fn (it is never unlocked), so its policy goes with it.
func goIdle(fn func()) {
	go func() {
		runtime.LockOSThread()
		if err := unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_IDLE}, 0); err != nil {
			logf("lower a background thread's priority: %v", err)
		}
		fn()
	}()
}
