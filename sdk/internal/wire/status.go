package wire

import (
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mcpruntime/mcpruntime/sdk"
)

var errCodes = []struct {
	err  error
	code codes.Code
}{
	{sdk.ErrNotSupported, codes.Unimplemented},
	{sdk.ErrSessionNotFound, codes.NotFound},
	{sdk.ErrSessionExists, codes.AlreadyExists},
	{sdk.ErrNotConfigured, codes.FailedPrecondition},
	{sdk.ErrInvalidToken, codes.PermissionDenied},
}

// toStatus turns a backend error into a gRPC status, keeping the sentinel's
// meaning in the code.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	for _, e := range errCodes {
		if errors.Is(err, e.err) {
			return status.Error(e.code, err.Error())
		}
	}
	return status.Error(codes.Unknown, err.Error())
}

// fromStatus turns a gRPC error back into an error that matches the sdk's
// sentinels with errors.Is.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, e := range errCodes {
		if st.Code() == e.code {
			return &remoteError{msg: st.Message(), sentinel: e.err}
		}
	}
	return &remoteError{msg: st.Message(), code: st.Code()}
}

type remoteError struct {
	msg      string
	sentinel error
	code     codes.Code
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

// GRPCCode returns the gRPC code of an error that crossed the boundary.
func GRPCCode(err error) codes.Code {
	var re *remoteError
	if errors.As(err, &re) {
		if re.sentinel != nil {
			for _, e := range errCodes {
				if e.err == re.sentinel {
					return e.code
				}
			}
		}
		return re.code
	}
	return status.Code(err)
}
