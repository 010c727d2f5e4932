package sdk

import "errors"

// Errors with a meaning across the plugin boundary. They survive the gRPC
// round trip: errors.Is works on what the core receives.
var (
	ErrNotSupported    = errors.New("not supported by this backend")
	ErrSessionNotFound = errors.New("session not found")
	ErrSessionExists   = errors.New("session already exists")
	ErrNotConfigured   = errors.New("backend not configured")
	ErrInvalidToken    = errors.New("invalid session token")
)
