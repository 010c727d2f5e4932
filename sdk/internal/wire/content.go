package wire

import (
	"github.com/mcpruntime/mcpruntime/sdk"
	pb "github.com/mcpruntime/mcpruntime/sdk/proto/sandbox/v1"
)

func contentToPB(parts []sdk.ContentPart) []*pb.ContentPart {
	if len(parts) == 0 {
		return nil
	}
	out := make([]*pb.ContentPart, len(parts))
	for i, p := range parts {
		out[i] = &pb.ContentPart{Type: p.Type, Text: p.Text, Data: p.Data, MimeType: p.MIMEType, Uri: p.URI}
	}
	return out
}

func contentFromPB(parts []*pb.ContentPart) []sdk.ContentPart {
	if len(parts) == 0 {
		return nil
	}
	out := make([]sdk.ContentPart, len(parts))
	for i, p := range parts {
		out[i] = sdk.ContentPart{Type: p.GetType(), Text: p.GetText(), Data: p.GetData(), MIMEType: p.GetMimeType(), URI: p.GetUri()}
	}
	return out
}
