package wire

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mcpruntime/mcpruntime/sdk"
	pb "github.com/mcpruntime/mcpruntime/sdk/proto/sandbox/v1"
)

// hostRegistry serves the Host service in the core process and routes each
// call to the session whose token it carries.
type hostRegistry struct {
	pb.UnimplementedHostServer

	mu        sync.RWMutex
	byToken   map[string]sdk.Host
	bySession map[string]string
}

func newHostRegistry() *hostRegistry {
	return &hostRegistry{byToken: map[string]sdk.Host{}, bySession: map[string]string{}}
}

func newToken() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error()) // never happens on Linux
	}
	return hex.EncodeToString(b)
}

func (r *hostRegistry) add(sessionID string, h sdk.Host) string {
	tok := newToken()
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.bySession[sessionID]; ok {
		delete(r.byToken, old)
	}
	r.byToken[tok] = h
	r.bySession[sessionID] = tok
	return tok
}

func (r *hostRegistry) revoke(sessionID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if tok, ok := r.bySession[sessionID]; ok {
		delete(r.byToken, tok)
		delete(r.bySession, sessionID)
	}
}

func (r *hostRegistry) lookup(token string) (sdk.Host, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	h, ok := r.byToken[token]
	if !ok || token == "" {
		return nil, status.Error(codes.PermissionDenied, sdk.ErrInvalidToken.Error())
	}
	return h, nil
}

func (r *hostRegistry) CallTool(ctx context.Context, req *pb.CallToolRequest) (*pb.CallToolResponse, error) {
	h, err := r.lookup(req.GetToken())
	if err != nil {
		return nil, err
	}
	res, err := h.CallTool(ctx, &sdk.ToolCall{Server: req.GetServer(), Tool: req.GetTool(), Arguments: req.GetArgumentsJson()})
	if err != nil {
		if code := sdk.ToolErrorCode(err); code != "" {
			// A failure with a code answers as a failed result, which
			// carries the code (a status would lose it).
			msg, merr := json.Marshal(err.Error())
			if merr != nil {
				return nil, toStatus(err)
			}
			return &pb.CallToolResponse{ResultJson: msg, IsError: true, ErrorCode: code}, nil
		}
		return nil, toStatus(err)
	}
	return &pb.CallToolResponse{ResultJson: res.Result, IsError: res.IsError, ErrorCode: res.Code, Content: contentToPB(res.Content)}, nil
}

func (r *hostRegistry) AskLLM(ctx context.Context, req *pb.AskLLMRequest) (*pb.AskLLMResponse, error) {
	h, err := r.lookup(req.GetToken())
	if err != nil {
		return nil, err
	}
	res, err := h.AskLLM(ctx, &sdk.LLMRequest{
		Prompt: req.GetPrompt(), System: req.GetSystem(), Model: req.GetModel(),
		MaxTokens: int(req.GetMaxTokens()), Temperature: req.GetTemperature(),
		Context: req.GetContext(), Recursive: req.GetRecursive(),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.AskLLMResponse{Text: res.Text, PromptTokens: res.PromptTokens, CompletionTokens: res.CompletionTokens}, nil
}
