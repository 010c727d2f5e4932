package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/vmm"
)

// probeBudget is how long the KVM probe guest may take to reach its agent.
// A guest under real KVM needs well under a second; /dev/kvm backends that
// emulate ring 0 in software (pagetable-based VMs) need minutes or crash.
const probeBudget = 10 * time.Second

type probeRecord struct {
	BootID string `json:"boot_id"`
	Driver string `json:"driver"`
	Image  string `json:"image"`
	Accel  string `json:"accel"`
	Why    string `json:"why"`
}

// pickAccel resolves the accel setting. "auto" boots a probe guest under
// KVM and keeps KVM only if it reaches its agent quickly; the verdict is
// cached per host boot.
func (b *Backend) pickAccel(ctx context.Context, mode string) (accel, why string, err error) {
	supported := b.driver.Accels()
	switch mode {
	case vmm.AccelTCG, vmm.AccelKVM:
		if !slices.Contains(supported, mode) {
			return "", "", fmt.Errorf("%w: %s cannot use %s (it supports %s)", vmm.ErrNoVMM, b.driver.Name(), mode, strings.Join(supported, ", "))
		}
		if mode == vmm.AccelKVM {
			if err := openKVM(); err != nil {
				return "", "", err
			}
		}
		return mode, "configured", nil
	}
	cache := filepath.Join(b.stateDir, "accel-probe.json")
	bootID := readBootID()
	if raw, err := os.ReadFile(cache); err == nil {
		var rec probeRecord
		if json.Unmarshal(raw, &rec) == nil && rec.BootID == bootID && rec.Driver == b.driver.Name() && rec.Image == b.image.Key {
			return rec.Accel, rec.Why + " (cached probe)", nil
		}
	}
	accel, why = b.probeKVM(ctx)
	if accel == vmm.AccelTCG && !slices.Contains(supported, vmm.AccelTCG) {
		return "", "", fmt.Errorf("%w: %s needs KVM, and KVM is not usable here: %s", vmm.ErrNoVMM, b.driver.Name(), why)
	}
	rec, _ := json.Marshal(probeRecord{BootID: bootID, Driver: b.driver.Name(), Image: b.image.Key, Accel: accel, Why: why})
	_ = os.WriteFile(cache, rec, 0o644)
	return accel, why, nil
}

func openKVM() error {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("%w: KVM unavailable: %v", vmm.ErrNoVMM, err)
	}
	f.Close()
	return nil
}

func (b *Backend) probeKVM(ctx context.Context) (string, string) {
	if err := openKVM(); err != nil {
		return vmm.AccelTCG, err.Error()
	}
	b.log.Info("probing KVM with a test guest", "budget", probeBudget)
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, probeBudget)
	defer cancel()
	id := "probe-" + newID()
	spec := b.vmSpec(id)
	spec.Accel = vmm.AccelKVM
	m, err := b.driver.Launch(pctx, spec)
	if err != nil {
		os.RemoveAll(spec.Dir)
		return vmm.AccelTCG, fmt.Sprintf("a KVM guest did not start: %v", clipErr(err))
	}
	v := &vm{id: id, dir: spec.Dir, m: m, agent: newAgentClient(m.Agent())}
	defer v.destroy()
	if err := v.waitAgent(pctx); err != nil {
		return vmm.AccelTCG, fmt.Sprintf("a KVM guest did not reach its agent within %s: %v", probeBudget, clipErr(err))
	}
	return vmm.AccelKVM, fmt.Sprintf("a KVM guest reached its agent in %s", time.Since(start).Round(time.Millisecond))
}

func clipErr(err error) string {
	s := err.Error()
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func readBootID() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
}
