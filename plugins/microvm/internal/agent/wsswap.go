package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

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
	f.lazy.abortUnder("")
	if f.w != nil {
		f.w.Close()
		f.w = nil
	}
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
func (f *files) mountDisk() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if wsDev == "" || ballast != nil {
		return errors.New("the workspace disk is not released")
	}
	if err := flushDevice(wsDev); err != nil {
		return err
	}
	if l := ext4Label(wsDev); l != wsLabel {
		return fmt.Errorf("the new workspace image has label %q, not %q", l, wsLabel)
	}
	// ext4Label read through the page cache: drop that too.
	if err := flushDevice(wsDev); err != nil {
		return err
	}
	raw, err := mountWorkspaceDisk(wsDev, wsMountTmp, workspaceDir)
	if err != nil {
		return err
	}
	f.manifest, f.full = map[string]fileState{}, true
	for _, line := range strings.Split(string(raw), "\n") {
		if line == "" {
			continue
		}
		e, err := proto.ParseManifestLine(line)
		if err != nil {
			// A full walk at the first scan still reports right, only more.
			logf("workspace image manifest: %v", err)
			f.manifest = map[string]fileState{}
			return nil
		}
		st := fileState{size: e.Size, mtime: e.Mtime * 1e9, mode: fs.FileMode(e.Perm)}
		if e.Dir {
			st = fileState{mode: fs.ModeDir | fs.FileMode(e.Perm)}
		}
		f.manifest[e.Rel] = st
	}
	w, err := watch.New()
	if err != nil {
		logf("workspace changes not tracked, every scan walks it: %v", err)
		return nil
	}
	if err := w.Add(workspaceDir, ""); err != nil {
		w.Close()
		logf("watch %s: %v", workspaceDir, err)
		return nil
	}
	for rel, st := range f.manifest {
		if st.mode.IsDir() {
			if err := w.Add(filepath.Join(workspaceDir, rel), rel); err != nil {
				w.Close()
				logf("watch %s: %v", rel, err)
				return nil
			}
		}
	}
	f.w, f.full = w, false
	return nil
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
