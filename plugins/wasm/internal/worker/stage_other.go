//go:build !linux

package worker

import (
	"errors"

	"github.com/mcpruntime/mcpruntime/plugins/wasm/internal/guest"
)

// stage is a staging root; only Linux has one (mount namespaces).
type stage struct{ root string }

func newStage(string) (*stage, error) {
	return nil, errors.New("staging root: mount namespaces are Linux's")
}

func (s *stage) bind(*Binding, []int) error { return errors.New("staging root: unsupported") }

func (s *stage) mounts() []guest.Mount { return nil }
