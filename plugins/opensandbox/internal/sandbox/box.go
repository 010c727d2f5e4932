package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"

	"github.com/mcpruntime/mcpruntime/plugins/opensandbox/internal/image"
	"github.com/mcpruntime/mcpruntime/sdk/kernel"
)

// Labels on the containers this backend creates.
const (
	// labelInstance is the owner id of the plugin process that created the
	// container (see sweep.go).
	labelInstance = "mcpruntime.opensandbox/instance"
	// labelOwner ("pid:start-time") named the creator before owner ids;
	// only the sweep still reads it.
	labelOwner = "mcpruntime.opensandbox/owner"
	labelRole  = "mcpruntime.opensandbox/role"
	// shimGroupAnnotation is read by containerd's runc v2 shim from the
	// OCI spec's annotations (not from container labels): containers with
	// the same value share one shim process.
	shimGroupAnnotation = "io.containerd.runc.v2.group"
)

// box is one sandbox container. It is the kernel.Transport of the session
// it serves: each kernel it starts is a task in the container.
type box struct {
	e    *engine
	id   string
	slot slotPaths
	cg   cgroup
	ctr  client.Container
	lim  limits // what the cgroup is set to

	// k is the newest kernel started in the container (the pool's warm
	// one until a session starts its own). The session owns and kills
	// the kernels it was handed; destroy kills k once more.
	k *kernelTask
	// handed: the warm kernel went to the session already.
	handed bool
}

// scoped puts the plugin's namespace on a request's context. The client's
// default namespace is not enough: a caller's context may carry a
// containerd namespace in its incoming gRPC metadata, which the client
// then takes as set while sending none.
func (e *engine) scoped(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, e.s.Namespace)
}

// newBox creates a container and starts its kernel with the engine's
// default limits; it serves no session yet.
func (e *engine) newBox(ctx context.Context) (_ *box, err error) {
	ctx = e.scoped(ctx)
	// The anchor starts the process's shim. A container started at the
	// same moment would start it a second time, and the two shim starts
	// race: one can remove the socket the other just made ("create new
	// shim socket: chmod …: no such file or directory"). Seen in the cold
	// path conformance run, whose first session follows Configure at once.
	if e.anchorDone != nil {
		select {
		case <-e.anchorDone:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	id := fmt.Sprintf("osb-%s-%d", e.owner, seq.Add(1))
	b := &box{e: e, id: id, slot: slotPaths{root: filepath.Join(e.slots, id)}, lim: e.defaults,
		cg: cgroup{path: cgroupParent + "/" + id, v2: unifiedCgroups()}}
	defer func() {
		if err != nil {
			b.destroy(context.WithoutCancel(ctx))
		}
	}()
	for _, d := range []string{b.slot.workspace(), b.slot.lib(), b.slot.state()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("container slot: %w", err)
		}
	}
	if err := os.Chown(b.slot.state(), image.SandboxUID, image.SandboxUID); err != nil {
		return nil, fmt.Errorf("container slot: %w", err)
	}
	if err := makeChannel(b.slot.channel()); err != nil {
		return nil, fmt.Errorf("container slot: %w", err)
	}
	t0 := time.Now()
	b.ctr, err = e.client.NewContainer(ctx, id,
		client.WithSnapshotter(e.s.Snapshotter),
		client.WithSnapshot(e.rootKey),
		client.WithRuntime(e.rt.shim, e.rt.options(e.runcRoot)),
		client.WithContainerLabels(map[string]string{labelInstance: e.owner, labelRole: "sandbox"}),
		client.WithNewSpec(e.specOpts(id, b.slot, b.lim)...),
	)
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	e.log.Debug("container created", "id", id, "took", time.Since(t0).String())
	if b.k, err = b.startKernel(ctx); err != nil {
		return nil, err
	}
	e.learnSeccomp(ctx, b)
	return b, nil
}

// learnSeccomp keeps the seccomp program crun compiled for a container
// created without a cached one (see seccompCache).
func (e *engine) learnSeccomp(ctx context.Context, b *box) {
	if e.seccomp == nil || !e.seccomp.empty() {
		return
	}
	spec, err := b.ctr.Spec(ctx)
	if err != nil {
		return
	}
	state := filepath.Join(e.runcRoot, e.rt.name, e.s.Namespace, b.id)
	if err := e.seccomp.learn(spec, state); err != nil {
		e.log.Warn("seccomp program not cached; crun compiles it for every container", "error", err)
	}
}

// Start implements kernel.Transport: the container's warm kernel the
// first time, a new kernel task afterwards. The Session calls it under its
// lock, so starts of one box never overlap.
func (b *box) Start(ctx context.Context) (kernel.Process, error) {
	if k := b.k; k != nil && !b.handed {
		b.handed = true
		if k.alive() {
			return k, nil
		}
		k.Kill(ctx)
	}
	k, err := b.startKernel(ctx)
	if err != nil {
		return nil, err
	}
	b.k, b.handed = k, true
	return k, nil
}

// destroy removes the container, its task and its slot.
func (b *box) destroy(ctx context.Context) {
	ctx = b.e.scoped(context.WithoutCancel(ctx))
	if b.k != nil {
		b.k.Kill(ctx)
	}
	if b.ctr != nil {
		if err := b.ctr.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
			b.e.log.Warn("delete container", "container", b.id, "error", err)
		}
	}
	if err := removeSlot(b.slot.root); err != nil {
		b.e.log.Warn("remove container slot", "container", b.id, "error", err)
	}
}
