package sdk

import (
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors with a meaning across the plugin boundary. They survive the gRPC
// round trip: errors.Is works on what the core receives.
var (
	ErrNotSupported    = errors.New("not supported by this backend")
	ErrSessionNotFound = errors.New("session not found")
	ErrSessionExists   = errors.New("session already exists")
	ErrNotConfigured   = errors.New("backend not configured")
	ErrInvalidToken    = errors.New("invalid session token")
)

var errCodes = []struct {
	err  error
	code codes.Code
}{
	{ErrNotSupported, codes.Unimplemented},
	{ErrSessionNotFound, codes.NotFound},
	{ErrSessionExists, codes.AlreadyExists},
	{ErrNotConfigured, codes.FailedPrecondition},
	{ErrInvalidToken, codes.PermissionDenied},
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
