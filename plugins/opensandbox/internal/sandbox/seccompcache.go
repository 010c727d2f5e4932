package sandbox

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
)

// crunBPFAnnotation makes crun load a ready seccomp BPF program instead of
// compiling the spec's seccomp profile with libseccomp, which is ~15 ms of
// every container create (a third of crun's create time here).
const crunBPFAnnotation = "run.oci.seccomp_bpf_data"

// seccompCache keeps the BPF program crun compiled for the sandbox's
// seccomp profile, so later containers skip the compilation. crun leaves
// the program it loaded in the container's state directory (seccomp.bpf,
// for `crun exec`); the first container of a profile is created normally
// and its program is picked up from there, then kept on disk keyed by the
// profile and the crun binary, so the next plugin process starts warm.
type seccompCache struct {
	dir      string // where programs are kept between plugin runs
	crunID   string // identifies the crun binary (path, size, mtime)
	mu       sync.Mutex
	programs map[string]string // profile key -> base64 BPF
}

func newSeccompCache(dir, crunBinary string) *seccompCache {
	id := crunBinary
	if st, err := os.Stat(crunBinary); err == nil {
		id = fmt.Sprintf("%s %d %d", crunBinary, st.Size(), st.ModTime().UnixNano())
	}
	return &seccompCache{dir: dir, crunID: id, programs: map[string]string{}}
}

// key identifies the program of a spec's seccomp profile ("" without one).
func (c *seccompCache) key(s *oci.Spec) string {
	if s.Linux == nil || s.Linux.Seccomp == nil {
		return ""
	}
	b, err := json.Marshal(s.Linux.Seccomp)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(append(b, c.crunID...))
	return hex.EncodeToString(sum[:16])
}

// specOpt sets the annotation when the program of the spec's profile is
// known. It must come after the seccomp profile is set.
func (c *seccompCache) specOpt() oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		key := c.key(s)
		if key == "" {
			return nil
		}
		if prog := c.lookup(key); prog != "" {
			if s.Annotations == nil {
				s.Annotations = map[string]string{}
			}
			s.Annotations[crunBPFAnnotation] = prog
		}
		return nil
	}
}

func (c *seccompCache) lookup(key string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.programs[key]; ok {
		return p
	}
	b, err := os.ReadFile(filepath.Join(c.dir, key+".bpf"))
	if err != nil || !validBPF(b) {
		return ""
	}
	p := base64.StdEncoding.EncodeToString(b)
	c.programs[key] = p
	return p
}

// learn records the program crun compiled for a container created without
// the annotation; stateDir is crun's state directory of that container.
func (c *seccompCache) learn(s *oci.Spec, stateDir string) error {
	key := c.key(s)
	if key == "" || s.Annotations[crunBPFAnnotation] != "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(stateDir, "seccomp.bpf"))
	if err != nil {
		return err
	}
	if !validBPF(b) {
		return fmt.Errorf("seccomp.bpf of %d bytes is not a BPF program", len(b))
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return err
	}
	tmp := filepath.Join(c.dir, fmt.Sprintf(".%s.%d", key, os.Getpid()))
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, key+".bpf")); err != nil {
		os.Remove(tmp)
		return err
	}
	c.mu.Lock()
	c.programs[key] = base64.StdEncoding.EncodeToString(b)
	c.mu.Unlock()
	return nil
}

// empty reports whether no program is known yet. The engine gives all its
// containers one profile, so one program is all it ever needs.
func (c *seccompCache) empty() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.programs) == 0
}

// validBPF: classic BPF instructions are 8 bytes; the kernel takes at most
// 4096 of them.
func validBPF(b []byte) bool {
	return len(b) > 0 && len(b)%8 == 0 && len(b) <= 4096*8
}
