package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// readOnlyRuntime returns a copy of the OCI runtime binary at bin on a
// read-only bind mount under runDir, made once per binary content.
//
// runc and crun re-exec themselves from a sealed memfd copy on every call
// unless their binary sits on a read-only file system and
// _LIBCONTAINER_CLONED_BINARY is set (the private containerd sets it; see
// daemon.Ensure): a container then cannot overwrite the runtime either,
// and a cold start saves two copies and re-execs (create, start). Where
// the copy cannot be made the original binary is used, as safe as before.
func readOnlyRuntime(bin string) (string, error) {
	src, err := os.Open(bin)
	if err != nil {
		return "", err
	}
	defer src.Close()
	h := sha256.New()
	if _, err := io.Copy(h, src); err != nil {
		return "", err
	}
	dir := filepath.Join(runDir, "runtime", hex.EncodeToString(h.Sum(nil))[:16])
	dst := filepath.Join(dir, filepath.Base(bin))
	if readOnlyFile(dst) {
		return dst, nil
	}
	// Fill a private directory, then move it in place: a concurrent
	// plugin finds either nothing or the whole binary.
	tmp := dir + ".tmp-" + strconv.Itoa(os.Getpid())
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	out, err := os.OpenFile(filepath.Join(tmp, filepath.Base(bin)), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		return "", err
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil && !os.IsExist(err) && !isNotEmpty(err) {
		return "", err
	}
	if readOnlyFile(dst) {
		return dst, nil // another plugin mounted it meanwhile
	}
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		return "", fmt.Errorf("bind %s: %w", dir, err)
	}
	if err := unix.Mount("", dir, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		_ = unix.Unmount(dir, unix.MNT_DETACH)
		return "", fmt.Errorf("make %s read-only: %w", dir, err)
	}
	return dst, nil
}

// readOnlyFile reports whether path exists on a read-only mount.
func readOnlyFile(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Flags&unix.ST_RDONLY != 0
}

func isNotEmpty(err error) bool {
	le, ok := err.(*os.LinkError)
	return ok && le.Err == unix.ENOTEMPTY
}
