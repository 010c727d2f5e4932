package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/watch"
)

// A pooled VM gets its session's workspace as a prebuilt image of its
// workspace disk: the agent releases the disk (releaseDisk), the host
// points the disk at the image, and the agent mounts it again
// (mountDisk), taking the image's manifest as what the host holds.

// releaseDisk unmounts the workspace disk and drops the guest's cache of
// it. Nothing may be using the workspace (the kernel of a pooled VM waits
// outside it): if the unmount fails, the workspace stays mounted and the
// host sends the files instead. The unmount is not lazy: a file system
// still alive on the device when its content changes would corrupt the
// new one.
func (f *files) releaseDisk() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if wsDev == "" || ballast == nil {
		return errors.New("the workspace is not on a disk of its own")
	}
	f.awaitBaseline()
	f.lazy.abortUnder("")
	if f.w != nil {
		f.w.Close()
		f.w = nil
	}
	wsSyncing.Wait() // its fd would keep the workspace busy
	// The ballast's fd holds the detached mount of the file system.
	if err := ballast.Close(); err != nil {
		return fmt.Errorf("release workspace: %w", err)
	}
	ballast = nil
	if err := unix.Unmount(workspaceDir, 0); err != nil {
		if rerr := reopenBallast(); rerr != nil {
			logf("workspace ballast lost: %v", rerr)
		}
		return fmt.Errorf("release workspace: unmount: %w (in use by: %s)", err, workspaceUsers())
	}
	f.manifest, f.full = map[string]fileState{}, true
	return flushDevice(wsDev)
}

// mountDisk mounts the workspace disk after the host swapped its image,
// and takes the image's manifest as the guest's record of what the host
// has, watching its directories: the first scan then reports only what
// code changes.
func (f *files) mountDisk() (timing string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if wsDev == "" || ballast != nil {
		return "", errors.New("the workspace disk is not released")
	}
	t0 := time.Now()
	if err := flushDevice(wsDev); err != nil {
		return "", err
	}
	t1 := time.Now()
	raw, err := mountWorkspaceDisk(wsDev, wsMountTmp, workspaceDir)
	if err != nil {
		return "", err
	}
	t2 := time.Now()
	defer func() {
		timing = fmt.Sprintf("flush %s mount %s manifest+watch %s", t1.Sub(t0), t2.Sub(t1), time.Since(t2))
	}()
	f.manifest, f.full = map[string]fileState{}, true
	// Directory lines come first: watch them now, before code runs (a
	// change before its directory is watched would be missed); the
	// files' lines are read in the background, while the host finishes
	// the attach (awaitBaseline).
	rest := string(raw)
	for rest != "" && strings.HasPrefix(rest, "d ") {
		line, tail, _ := strings.Cut(rest, "\n")
		rest = tail
		e, err := proto.ParseManifestLine(line)
		if err != nil {
			// A full walk at the first scan still reports right, only more.
			logf("workspace image manifest: %v", err)
			f.manifest = map[string]fileState{}
			return timing, nil
		}
		f.manifest[e.Rel] = fileState{mode: fs.ModeDir | fs.FileMode(e.Perm)}
	}
	done := make(chan struct{})
	f.baseline, f.base = done, map[string]fileState{}
	// Started once the directories are watched (on one vCPU it would
	// otherwise slow that down).
	defer goBaseline(func(base map[string]fileState) {
		for _, line := range strings.Split(rest, "\n") {
			if line == "" {
				continue
			}
			e, err := proto.ParseManifestLine(line)
			if err != nil {
				logf("workspace image manifest: %v", err)
				continue // reported as changed by the scan: the host compares
			}
			base[e.Rel] = fileState{size: e.Size, mtime: e.Mtime * 1e9, mode: fs.FileMode(e.Perm)}
		}
	}, f.base, done)
	w, err := watch.New()
	if err != nil {
		logf("workspace changes not tracked, every scan walks it: %v", err)
		return timing, nil
	}
	if err := w.Add(workspaceDir, ""); err != nil {
		w.Close()
		logf("watch %s: %v", workspaceDir, err)
		return timing, nil
	}
	for rel, st := range f.manifest {
		if st.mode.IsDir() {
			if err := w.Add(filepath.Join(workspaceDir, rel), rel); err != nil {
				w.Close()
				logf("watch %s: %v", rel, err)
				return timing, nil
			}
		}
	}
	f.w, f.full = w, false
	return timing, nil
}

// workspaceUsers names the processes whose working directory or open
// files are in the workspace (for the error of a release that failed).
func workspaceUsers() string {
	var users []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		links := []string{filepath.Join(p, "cwd"), filepath.Join(p, "root")}
		fds, _ := filepath.Glob(filepath.Join(p, "fd", "*"))
		for _, l := range append(links, fds...) {
			if t, err := os.Readlink(l); err == nil && (t == workspaceDir || strings.HasPrefix(t, workspaceDir+"/")) {
				users = append(users, strings.TrimPrefix(l, "/proc/")+" -> "+t)
			}
		}
	}
	if len(users) == 0 {
		return "no process"
	}
	return strings.Join(users, ", ")
}

// goBaseline reads the manifest's file lines into base in the background,
// closing done when it is complete.
func goBaseline(read func(map[string]fileState), base map[string]fileState, done chan struct{}) {
	go func() {
		defer close(done)
		read(base)
	}()
}

// wsSyncing counts background syncs of the workspace disk (syncWorkspace).
var wsSyncing sync.WaitGroup

// syncWorkspace writes the workspace disk's pending changes out in the
// background (after a wipe), so that a pooled VM's release at attach
// unmounts a clean file system instead of writing them then.
func syncWorkspace() {
	wsSyncing.Add(1)
	go func() {
		defer wsSyncing.Done()
		fd, err := unix.Open(workspaceDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return
		}
		defer unix.Close(fd)
		if err := unix.Syncfs(fd); err != nil {
			logf("sync workspace: %v", err)
		}
	}()
}
