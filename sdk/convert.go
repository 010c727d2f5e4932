package sdk

import (
	"encoding/json"
	"fmt"
	"time"

	pb "github.com/mcpruntime/mcpruntime/sdk/proto/sandbox/v1"
)

var isolationToProto = map[Isolation]pb.Isolation{
	IsolationProcess:   pb.Isolation_ISOLATION_PROCESS,
	IsolationWasm:      pb.Isolation_ISOLATION_WASM,
	IsolationContainer: pb.Isolation_ISOLATION_CONTAINER,
	IsolationMicroVM:   pb.Isolation_ISOLATION_MICROVM,
}

var errorKindToProto = map[ErrorKind]pb.ErrorKind{
	ErrorNone:        pb.ErrorKind_ERROR_KIND_NONE,
	ErrorException:   pb.ErrorKind_ERROR_KIND_EXCEPTION,
	ErrorSyntax:      pb.ErrorKind_ERROR_KIND_SYNTAX,
	ErrorExit:        pb.ErrorKind_ERROR_KIND_EXIT,
	ErrorTimeout:     pb.ErrorKind_ERROR_KIND_TIMEOUT,
	ErrorMemory:      pb.ErrorKind_ERROR_KIND_MEMORY,
	ErrorKernelDied:  pb.ErrorKind_ERROR_KIND_KERNEL_DIED,
	ErrorSessionLost: pb.ErrorKind_ERROR_KIND_SESSION_LOST,
	ErrorInternal:    pb.ErrorKind_ERROR_KIND_INTERNAL,
}

func reverse[K, V comparable](m map[K]V) map[V]K {
	r := make(map[V]K, len(m))
	for k, v := range m {
		r[v] = k
	}
	return r
}

var (
	isolationFromProto = reverse(isolationToProto)
	errorKindFromProto = reverse(errorKindToProto)
)

func infoToProto(i *Info) *pb.InfoResponse {
	versions := make([]int32, len(i.ProtocolVersions))
	for n, v := range i.ProtocolVersions {
		versions[n] = int32(v)
	}
	c := i.Capabilities
	return &pb.InfoResponse{
		Name:             i.Name,
		Version:          i.Version,
		Description:      i.Description,
		ProtocolVersions: versions,
		Capabilities: &pb.Capabilities{
			PersistentSessions: c.PersistentSessions,
			Snapshots:          c.Snapshots,
			Streaming:          c.Streaming,
			HostCalls:          c.HostCalls,
			Isolation:          isolationToProto[c.Isolation],
			Languages:          c.Languages,
			EnforcedLimits:     c.EnforcedLimits,
		},
	}
}

func infoFromProto(r *pb.InfoResponse) *Info {
	versions := make([]int, len(r.GetProtocolVersions()))
	for n, v := range r.GetProtocolVersions() {
		versions[n] = int(v)
	}
	c := r.GetCapabilities()
	return &Info{
		Name:             r.GetName(),
		Version:          r.GetVersion(),
		Description:      r.GetDescription(),
		ProtocolVersions: versions,
		Capabilities: Capabilities{
			PersistentSessions: c.GetPersistentSessions(),
			Snapshots:          c.GetSnapshots(),
			Streaming:          c.GetStreaming(),
			HostCalls:          c.GetHostCalls(),
			Isolation:          isolationFromProto[c.GetIsolation()],
			Languages:          c.GetLanguages(),
			EnforcedLimits:     c.GetEnforcedLimits(),
		},
	}
}

func specToProto(s *ConfigSpec) (*pb.ConfigSchemaResponse, error) {
	out := &pb.ConfigSchemaResponse{}
	for _, a := range s.Attributes {
		var def string
		if a.Default != nil {
			b, err := json.Marshal(a.Default)
			if err != nil {
				return nil, fmt.Errorf("config attribute %q: default: %w", a.Name, err)
			}
			def = string(b)
		}
		out.Attributes = append(out.Attributes, &pb.ConfigAttribute{
			Name: a.Name, Type: a.Type, Required: a.Required, DefaultJson: def, Description: a.Description,
		})
	}
	return out, nil
}

func specFromProto(r *pb.ConfigSchemaResponse) (*ConfigSpec, error) {
	out := &ConfigSpec{}
	for _, a := range r.GetAttributes() {
		attr := ConfigAttribute{Name: a.GetName(), Type: a.GetType(), Required: a.GetRequired(), Description: a.GetDescription()}
		if d := a.GetDefaultJson(); d != "" {
			if err := json.Unmarshal([]byte(d), &attr.Default); err != nil {
				return nil, fmt.Errorf("config attribute %q: default: %w", a.GetName(), err)
			}
		}
		out.Attributes = append(out.Attributes, attr)
	}
	return out, nil
}

func limitsToProto(l Limits) *pb.Limits {
	return &pb.Limits{
		TimeoutMs:   l.Timeout.Milliseconds(),
		MemoryBytes: l.MemoryBytes,
		OutputBytes: l.OutputBytes,
		CpuMillis:   l.CPUMillis,
		Pids:        l.Pids,
	}
}

func limitsFromProto(l *pb.Limits) Limits {
	return Limits{
		Timeout:     time.Duration(l.GetTimeoutMs()) * time.Millisecond,
		MemoryBytes: l.GetMemoryBytes(),
		OutputBytes: l.GetOutputBytes(),
		CPUMillis:   l.GetCpuMillis(),
		Pids:        l.GetPids(),
	}
}

func sessionToProto(s *SessionSpec) *pb.CreateSessionRequest {
	req := &pb.CreateSessionRequest{
		SessionId: s.ID,
		Workspace: s.Workspace,
		Limits:    limitsToProto(s.Limits),
		Env:       s.Env,
	}
	for _, m := range s.Mounts {
		req.Mounts = append(req.Mounts, &pb.Mount{Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	return req
}

func sessionFromProto(r *pb.CreateSessionRequest) *SessionSpec {
	s := &SessionSpec{
		ID:        r.GetSessionId(),
		Workspace: r.GetWorkspace(),
		Limits:    limitsFromProto(r.GetLimits()),
		Env:       r.GetEnv(),
	}
	for _, m := range r.GetMounts() {
		s.Mounts = append(s.Mounts, Mount{Source: m.GetSource(), Target: m.GetTarget(), ReadOnly: m.GetReadOnly()})
	}
	return s
}

func resultToProto(r *ExecResult) *pb.ExecResult {
	out := &pb.ExecResult{
		ExitCode:        int32(r.ExitCode),
		ErrorKind:       errorKindToProto[r.Error],
		Message:         r.Message,
		DurationUs:      r.Duration.Microseconds(),
		OutputTruncated: r.OutputTruncated,
		StateLost:       r.StateLost,
	}
	if e := r.Exception; e != nil {
		out.Exception = &pb.ExceptionInfo{Type: e.Type, Message: e.Message, Traceback: e.Traceback}
	}
	return out
}

func resultFromProto(r *pb.ExecResult) *ExecResult {
	out := &ExecResult{
		ExitCode:        int(r.GetExitCode()),
		Error:           errorKindFromProto[r.GetErrorKind()],
		Message:         r.GetMessage(),
		Duration:        time.Duration(r.GetDurationUs()) * time.Microsecond,
		OutputTruncated: r.GetOutputTruncated(),
		StateLost:       r.GetStateLost(),
	}
	if e := r.GetException(); e != nil {
		out.Exception = &Exception{Type: e.GetType(), Message: e.GetMessage(), Traceback: e.GetTraceback()}
	}
	return out
}

func eventToProto(e Event) *pb.ExecuteEvent {
	switch e.Kind {
	case EventStdout:
		return &pb.ExecuteEvent{Event: &pb.ExecuteEvent_Stdout{Stdout: &pb.OutputChunk{Data: e.Data}}}
	case EventStderr:
		return &pb.ExecuteEvent{Event: &pb.ExecuteEvent_Stderr{Stderr: &pb.OutputChunk{Data: e.Data}}}
	case EventHostCall:
		n := e.HostCall
		if n == nil {
			return nil
		}
		return &pb.ExecuteEvent{Event: &pb.ExecuteEvent_HostCall{HostCall: &pb.HostCallNotice{
			Method: n.Method, Detail: n.Detail, DurationUs: n.Duration.Microseconds(), Error: n.Error,
		}}}
	}
	return nil
}
