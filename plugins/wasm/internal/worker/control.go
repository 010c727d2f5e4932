package worker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// lineReader reads the control socket's lines together with the file
// descriptors sent along with them (SCM_RIGHTS: the mount trees of a
// staged worker's binding).
type lineReader struct {
	f   *os.File
	buf []byte
	fds []int
}

// readLine returns the next line without its newline, and every
// descriptor received while reading it.
func (r *lineReader) readLine() ([]byte, []int, error) {
	rc, err := r.f.SyscallConn()
	if err != nil {
		return nil, nil, err
	}
	for {
		if i := bytes.IndexByte(r.buf, '\n'); i >= 0 {
			line := append([]byte(nil), r.buf[:i]...)
			r.buf = r.buf[i+1:]
			fds := r.fds
			r.fds = nil
			return line, fds, nil
		}
		data := make([]byte, 64<<10)
		oob := make([]byte, unix.CmsgSpace(64*4))
		var n, oobn int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			n, oobn, _, _, rerr = unix.Recvmsg(int(fd), data, oob, unix.MSG_CMSG_CLOEXEC)
			return rerr != unix.EAGAIN
		}); err != nil {
			return nil, nil, err
		}
		if rerr != nil {
			return nil, nil, rerr
		}
		if oobn > 0 {
			fds, err := parseRights(oob[:oobn])
			r.fds = append(r.fds, fds...)
			if err != nil {
				return nil, nil, err
			}
		}
		if n == 0 {
			return nil, nil, io.EOF
		}
		r.buf = append(r.buf, data[:n]...)
	}
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("control message: %w", err)
	}
	var out []int
	var errs []error
	for i := range msgs {
		fds, err := unix.ParseUnixRights(&msgs[i])
		out = append(out, fds...)
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		_ = unix.Close(fd)
	}
}
