package backend

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/mcpruntime/mcpruntime/sdk/kernel"
)

// The programs the task runs (see their headers).
var (
	//go:embed guest/init.py
	initSource string
	//go:embed guest/relay.py
	relaySource string
)

// Names in a session job.
const (
	groupName = "sandbox"
	taskName  = "kernel"
	// kernelDir is where init puts the kernel and its channel, inside the
	// task (NOMAD_TASK_DIR is /local in the exec and docker drivers).
	kernelDir = "/local/mcpruntime"

	metaOwner    = "mcpruntime_owner"
	metaInstance = "mcpruntime_instance"
	metaSession  = "mcpruntime_session"
	metaRole     = "mcpruntime_role"

	rolePool    = "pool"
	roleSession = "session"
)

// jobSpec is what varies between the jobs of one engine.
type jobSpec struct {
	id      string
	session string // empty for a pooled allocation
	memory  int64  // bytes
}

// job builds the Nomad job of one sandbox: a batch job with one task that
// runs init (process 1), which starts the kernel. It is never restarted
// or rescheduled: a new kernel is a new allocation, placed by the caller.
func (e *engine) job(ctx context.Context, js jobSpec) *api.Job {
	s := e.s
	role := rolePool
	if js.session != "" {
		role = roleSession
	}
	memMB := int(max(js.memory>>20, 64))
	cpu := int(max(s.CPU, 20))
	task := &api.Task{
		Name:   taskName,
		Driver: s.Driver,
		Config: map[string]any{
			"command": s.Python,
			"args":    []string{"-I", "-S", "-c", initSource},
		},
		Env: map[string]string{
			"MCPRUNTIME_KERNEL_SOURCE": string(kernel.Source()),
			"MCPRUNTIME_KERNEL_BOOT":   kernel.Bootstrap(kernelDir),
			"MCPRUNTIME_NPROC":         strconv.Itoa(int(s.Pids)),
			// No library root of other backends on sys.path.
			"MCPRUNTIME_LIB": "",
			"HOME":           "/local",
			"TMPDIR":         "/tmp",
			"PATH":           "/usr/local/bin:/usr/bin:/bin",
		},
		Resources: &api.Resources{CPU: &cpu, MemoryMB: &memMB},
		// init's SIGTERM handler kills the task's processes at once.
		KillSignal:  "SIGTERM",
		KillTimeout: ptr(2 * time.Second),
		LogConfig:   &api.LogConfig{MaxFiles: ptr(1), MaxFileSizeMB: ptr(1)},
	}
	group := &api.TaskGroup{
		Name:  ptr(groupName),
		Count: ptr(1),
		Tasks: []*api.Task{task},
		RestartPolicy: &api.RestartPolicy{
			Attempts: ptr(0), Mode: ptr("fail"),
		},
		ReschedulePolicy: &api.ReschedulePolicy{Attempts: ptr(0), Unlimited: ptr(false)},
		EphemeralDisk:    &api.EphemeralDisk{SizeMB: ptr(64)},
	}
	switch s.Driver {
	case "exec":
		// The exec driver hands its default capabilities (dac_override,
		// setuid, chown, ...) to tasks of any user, and the chroot's files
		// are hard links to the client's: sandbox code keeps none.
		task.Config["cap_drop"] = []string{"all"}
		if s.NetworkMode != "host" {
			// Group network modes give the task a network namespace of
			// its own; the default CNI network has only loopback.
			group.Networks = []*api.NetworkResource{{Mode: s.NetworkMode}}
		}
	case "docker":
		task.Config["image"] = s.Image
		task.Config["network_mode"] = s.NetworkMode
		task.Config["pids_limit"] = int(s.Pids)
		task.Config["cap_drop"] = []string{"all"}
	}
	job := &api.Job{
		ID:          ptr(js.id),
		Name:        ptr(js.id),
		Type:        ptr("batch"),
		Datacenters: s.Datacenters,
		TaskGroups:  []*api.TaskGroup{group},
		Meta: map[string]string{
			metaOwner: e.owner, metaInstance: e.instance, metaRole: role, metaSession: js.session,
		},
	}
	if s.NodePool != "" {
		job.NodePool = ptr(s.NodePool)
	}
	if s.Region != "" {
		job.Region = ptr(s.Region)
	}
	for _, c := range s.Constraints {
		if k, err := parseConstraint(c); err == nil {
			job.Constraints = append(job.Constraints, k)
		}
	}
	for _, id := range e.avoided(ctx) {
		job.Constraints = append(job.Constraints, &api.Constraint{LTarget: "${node.unique.id}", Operand: "!=", RTarget: id})
	}
	for _, a := range s.Affinities {
		if k, err := parseAffinity(a); err == nil {
			job.Affinities = append(job.Affinities, k)
		}
	}
	return job
}

func ptr[T any](v T) *T { return &v }

// jobPrefix is the id prefix of this engine's owner's jobs.
func (e *engine) jobPrefix() string { return fmt.Sprintf("%s-%s-", e.s.JobPrefix, e.owner) }

// States the api module has no names for.
const (
	taskStateRunning = "running"
	taskStateDead    = "dead"
	jobStatusDead    = "dead"
)
