package wire

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/mcpruntime/mcpruntime/sdk"
	pb "github.com/mcpruntime/mcpruntime/sdk/proto/sandbox/v1"
)

var isolationToProto = map[sdk.Isolation]pb.Isolation{
	sdk.IsolationProcess:   pb.Isolation_ISOLATION_PROCESS,
	sdk.IsolationWasm:      pb.Isolation_ISOLATION_WASM,
	sdk.IsolationContainer: pb.Isolation_ISOLATION_CONTAINER,
	sdk.IsolationMicroVM:   pb.Isolation_ISOLATION_MICROVM,
}

var errorKindToProto = map[sdk.ErrorKind]pb.ErrorKind{
	sdk.ErrorNone:        pb.ErrorKind_ERROR_KIND_NONE,
	sdk.ErrorException:   pb.ErrorKind_ERROR_KIND_EXCEPTION,
	sdk.ErrorSyntax:      pb.ErrorKind_ERROR_KIND_SYNTAX,
	sdk.ErrorExit:        pb.ErrorKind_ERROR_KIND_EXIT,
	sdk.ErrorTimeout:     pb.ErrorKind_ERROR_KIND_TIMEOUT,
	sdk.ErrorMemory:      pb.ErrorKind_ERROR_KIND_MEMORY,
	sdk.ErrorKernelDied:  pb.ErrorKind_ERROR_KIND_KERNEL_DIED,
	sdk.ErrorSessionLost: pb.ErrorKind_ERROR_KIND_SESSION_LOST,
	sdk.ErrorInternal:    pb.ErrorKind_ERROR_KIND_INTERNAL,
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

func infoToProto(i *sdk.Info) *pb.InfoResponse {
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
			Libraries:          c.Libraries,
		},
	}
}

func infoFromProto(r *pb.InfoResponse) *sdk.Info {
	versions := make([]int, len(r.GetProtocolVersions()))
	for n, v := range r.GetProtocolVersions() {
		versions[n] = int(v)
	}
	c := r.GetCapabilities()
	return &sdk.Info{
		Name:             r.GetName(),
		Version:          r.GetVersion(),
		Description:      r.GetDescription(),
		ProtocolVersions: versions,
		Capabilities: sdk.Capabilities{
			PersistentSessions: c.GetPersistentSessions(),
			Snapshots:          c.GetSnapshots(),
			Streaming:          c.GetStreaming(),
			HostCalls:          c.GetHostCalls(),
			Isolation:          isolationFromProto[c.GetIsolation()],
			Languages:          c.GetLanguages(),
			EnforcedLimits:     c.GetEnforcedLimits(),
			Libraries:          c.GetLibraries(),
		},
	}
}

func specToProto(s *sdk.ConfigSpec) (*pb.ConfigSchemaResponse, error) {
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

func specFromProto(r *pb.ConfigSchemaResponse) (*sdk.ConfigSpec, error) {
	out := &sdk.ConfigSpec{}
	for _, a := range r.GetAttributes() {
		attr := sdk.ConfigAttribute{Name: a.GetName(), Type: a.GetType(), Required: a.GetRequired(), Description: a.GetDescription()}
		if d := a.GetDefaultJson(); d != "" {
			if err := json.Unmarshal([]byte(d), &attr.Default); err != nil {
				return nil, fmt.Errorf("config attribute %q: default: %w", a.GetName(), err)
			}
		}
		out.Attributes = append(out.Attributes, attr)
	}
	return out, nil
}

func limitsToProto(l sdk.Limits) *pb.Limits {
	return &pb.Limits{
		TimeoutMs:   l.Timeout.Milliseconds(),
		MemoryBytes: l.MemoryBytes,
		OutputBytes: l.OutputBytes,
		CpuMillis:   l.CPUMillis,
		Pids:        l.Pids,
	}
}

func limitsFromProto(l *pb.Limits) sdk.Limits {
	return sdk.Limits{
		Timeout:     time.Duration(l.GetTimeoutMs()) * time.Millisecond,
		MemoryBytes: l.GetMemoryBytes(),
		OutputBytes: l.GetOutputBytes(),
		CPUMillis:   l.GetCpuMillis(),
		Pids:        l.GetPids(),
	}
}

func sessionToProto(s *sdk.SessionSpec) *pb.CreateSessionRequest {
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

func sessionFromProto(r *pb.CreateSessionRequest) *sdk.SessionSpec {
	s := &sdk.SessionSpec{
		ID:        r.GetSessionId(),
		Workspace: r.GetWorkspace(),
		Limits:    limitsFromProto(r.GetLimits()),
		Env:       r.GetEnv(),
	}
	for _, m := range r.GetMounts() {
		s.Mounts = append(s.Mounts, sdk.Mount{Source: m.GetSource(), Target: m.GetTarget(), ReadOnly: m.GetReadOnly()})
	}
	return s
}

func resultToProto(r *sdk.ExecResult) *pb.ExecResult {
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

func resultFromProto(r *pb.ExecResult) *sdk.ExecResult {
	out := &sdk.ExecResult{
		ExitCode:        int(r.GetExitCode()),
		Error:           errorKindFromProto[r.GetErrorKind()],
		Message:         r.GetMessage(),
		Duration:        time.Duration(r.GetDurationUs()) * time.Microsecond,
		OutputTruncated: r.GetOutputTruncated(),
		StateLost:       r.GetStateLost(),
	}
	if e := r.GetException(); e != nil {
		out.Exception = &sdk.Exception{Type: e.GetType(), Message: e.GetMessage(), Traceback: e.GetTraceback()}
	}
	return out
}

func eventToProto(e sdk.Event) *pb.ExecuteEvent {
	switch e.Kind {
	case sdk.EventStdout:
		return &pb.ExecuteEvent{Event: &pb.ExecuteEvent_Stdout{Stdout: &pb.OutputChunk{Data: e.Data}}}
	case sdk.EventStderr:
		return &pb.ExecuteEvent{Event: &pb.ExecuteEvent_Stderr{Stderr: &pb.OutputChunk{Data: e.Data}}}
	case sdk.EventHostCall:
		n := e.HostCall
		if n == nil {
			return nil
		}
		return &pb.ExecuteEvent{Event: &pb.ExecuteEvent_HostCall{HostCall: &pb.HostCallNotice{
			Method: n.Method, Detail: n.Detail, DurationUs: n.Duration.Microseconds(), Error: n.Error,
		}}}
	case sdk.EventDisplay:
		if e.Display == nil {
			return nil
		}
		return &pb.ExecuteEvent{Event: &pb.ExecuteEvent_Display{Display: &pb.Display{Data: e.Display.Data}}}
	}
	return nil
}
