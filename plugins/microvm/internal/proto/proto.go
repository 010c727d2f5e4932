// Package proto is the wire format between the plugin (host) and the guest
// agent (PID 1 inside the microVM). One byte stream — a virtio-serial port
// or a vsock connection — carries two kinds of envelope: control messages
// (JSON requests, replies and events) and raw kernel channel bytes tagged
// with the kernel's generation, so bytes of a dead kernel can never be
// mistaken for its successor's.
package proto

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Envelope kinds.
const (
	KindControl byte = 0
	KindKernel  byte = 1
)

// MaxEnvelope bounds one envelope; a larger header means a corrupt stream.
const MaxEnvelope = 72 << 20

// PortName is the virtio-serial port name the agent looks for.
const PortName = "mcpruntime.agent"

// VsockPort is the vsock port the agent listens on when the VMM offers
// vsock instead of virtio-serial (Cloud Hypervisor).
const VsockPort = 1024

// headerSize is length(4) + kind(1) + generation(4).
const headerSize = 9

// WriteEnvelope writes one envelope in a single Write call, so concurrent
// writers only need to serialise whole calls.
func WriteEnvelope(w io.Writer, kind byte, gen uint32, payload []byte) error {
	buf := make([]byte, headerSize+len(payload))
	binary.BigEndian.PutUint32(buf, uint32(5+len(payload)))
	buf[4] = kind
	binary.BigEndian.PutUint32(buf[5:], gen)
	copy(buf[headerSize:], payload)
	_, err := w.Write(buf)
	return err
}

// ReadEnvelope reads one envelope.
func ReadEnvelope(r io.Reader) (kind byte, gen uint32, payload []byte, err error) {
	var head [headerSize]byte
	if _, err = io.ReadFull(r, head[:]); err != nil {
		return 0, 0, nil, err
	}
	n := binary.BigEndian.Uint32(head[:])
	if n < 5 || n > MaxEnvelope {
		return 0, 0, nil, fmt.Errorf("agent channel corrupt: envelope of %d bytes", n)
	}
	payload = make([]byte, n-5)
	if _, err = io.ReadFull(r, payload); err != nil {
		return 0, 0, nil, fmt.Errorf("agent channel: truncated envelope: %w", err)
	}
	return head[4], binary.BigEndian.Uint32(head[5:]), payload, nil
}
