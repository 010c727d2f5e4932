package sandbox

import (
	"context"
	"fmt"

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
// needs one: pooled containers keep the shim up already. It is removed
// like any other container (removeContainer), also by the sweep.

// anchorLimits: init in pause mode is one small static Go process (pids
// count its threads too: the Go runtime starts a handful).
var anchorLimits = limits{memory: 32 << 20, pids: 16}

// startAnchor creates the anchor container and starts its process.
// Failing is not fatal: sessions work without it, each cold start then may
// start a shim.
func (e *engine) startAnchor(ctx context.Context) (_ client.Container, err error) {
	id := fmt.Sprintf("osb-%s-anchor-%d", e.owner, seq.Add(1))
	opts := append([]oci.SpecOpts{
		oci.WithProcessArgs(guestKernelDir+"/"+initName, "pause"),
		oci.WithProcessCwd("/"),
		oci.WithCapabilities(nil),
		oci.WithHostname("anchor"),
		oci.WithMounts([]specs.Mount{e.kernelMount()}),
	}, e.commonSpecOpts(id, anchorLimits)...)
	ctr, err := e.client.NewContainer(ctx, id,
		client.WithSnapshotter(e.s.Snapshotter),
		client.WithSnapshot(e.rootKey),
		client.WithRuntime(e.rt.shim, e.rt.options(e.runcRoot)),
		client.WithContainerLabels(map[string]string{labelInstance: e.owner, labelRole: "anchor"}),
		client.WithNewSpec(opts...),
	)
	if err != nil {
		return nil, fmt.Errorf("create anchor container: %w", err)
	}
	defer func() {
		if err != nil {
			removeContainer(context.WithoutCancel(ctx), ctr)
		}
	}()
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		return nil, fmt.Errorf("create anchor task: %w", err)
	}
	if err := task.Start(ctx); err != nil {
		return nil, fmt.Errorf("start anchor task: %w", err)
	}
	return ctr, nil
}
