package sandbox

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The anchor is a container whose only process waits for SIGTERM. It
// exists so that the plugin's runtime shim (one per plugin process, see
// shimGroupAnnotation) does not exit with the last session: the runc v2
// shim leaves when its last container is deleted, and starting it again
// cost ~10 ms of the next cold start. Only a plugin without a warm pool
// needs one: pooled containers keep the shim up already.
type anchor struct {
	ctr  client.Container
	task client.Task
}

// anchorLimits: init in pause mode is one small static Go process (pids
// count its threads too: the Go runtime starts a handful).
var anchorLimits = limits{memory: 32 << 20, pids: 16}

// startAnchor creates and starts the anchor container. Failing is not
// fatal: sessions work without it, each cold start then may start a shim.
func (e *engine) startAnchor(ctx context.Context) (_ *anchor, err error) {
	id := fmt.Sprintf("osb-%d-anchor-%d", os.Getpid(), e.seq.Add(1))
	a := &anchor{}
	defer func() {
		if err != nil {
			a.remove(context.WithoutCancel(ctx))
		}
	}()
	opts := append([]oci.SpecOpts{
		oci.WithProcessArgs(guestKernelDir+"/"+initName, "pause"),
		oci.WithProcessCwd("/"),
		oci.WithCapabilities(nil),
		oci.WithHostname("anchor"),
		oci.WithMounts([]specs.Mount{e.kernelMount()}),
	}, e.commonSpecOpts(id, anchorLimits)...)
	a.ctr, err = e.client.NewContainer(ctx, id,
		client.WithSnapshotter(e.s.Snapshotter),
		client.WithSnapshot(e.rootKey),
		client.WithRuntime(e.rt.shim, e.rt.options(e.runcRoot)),
		client.WithContainerLabels(map[string]string{labelOwner: e.owner, labelRole: "anchor"}),
		client.WithNewSpec(opts...),
	)
	if err != nil {
		return nil, fmt.Errorf("create anchor container: %w", err)
	}
	if a.task, err = a.ctr.NewTask(ctx, cio.NullIO); err != nil {
		return nil, fmt.Errorf("create anchor task: %w", err)
	}
	if err := a.task.Start(ctx); err != nil {
		return nil, fmt.Errorf("start anchor task: %w", err)
	}
	return a, nil
}

// remove stops the anchor's process and deletes its task and container.
func (a *anchor) remove(ctx context.Context) {
	if a == nil {
		return
	}
	if a.task != nil {
		if exited, err := a.task.Wait(ctx); err == nil {
			_ = a.task.Kill(ctx, syscall.SIGKILL)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
			}
		}
		_, _ = a.task.Delete(ctx, client.WithProcessKill)
	}
	if a.ctr != nil {
		_ = a.ctr.Delete(ctx)
	}
}
