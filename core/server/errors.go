package server

import (
	"errors"
	"fmt"
	"net/http"
)

// RequestError is a refused request: the status to answer and why.
type RequestError struct {
	Status int
	Err    error
}

// Error returns the reason.
func (e *RequestError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *RequestError) Unwrap() error { return e.Err }

// badRequest is a 400 with a formatted reason.
func badRequest(format string, args ...any) error {
	return &RequestError{Status: http.StatusBadRequest, Err: fmt.Errorf(format, args...)}
}

// tooLarge is a 413 with a formatted reason.
func tooLarge(format string, args ...any) error {
	return &RequestError{Status: http.StatusRequestEntityTooLarge, Err: fmt.Errorf(format, args...)}
}

// statusFor is the status a RequestError carries, else 400.
func statusFor(err error) int {
	var re *RequestError
	if errors.As(err, &re) {
		return re.Status
	}
	return http.StatusBadRequest
}
