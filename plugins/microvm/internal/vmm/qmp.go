package vmm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
)

// qmp is a client of QEMU's machine protocol on a unix socket. Commands are
// serialised; QEMU answers them in order, events are dropped (state is
// polled).
type qmp struct {
	conn *net.UnixConn
	rd   *bufio.Reader
	mu   sync.Mutex
}

type qmpReply struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event string `json:"event"`
	QMP   any    `json:"QMP"`
}

func newQMP(ctx context.Context, conn *net.UnixConn) (*qmp, error) {
	q := &qmp{conn: conn, rd: bufio.NewReaderSize(conn, 64<<10)}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
		defer conn.SetDeadline(timeZero)
	}
	// Greeting, then leave capabilities negotiation mode.
	if _, err := q.readReply(); err != nil {
		return nil, fmt.Errorf("qmp greeting: %w", err)
	}
	if _, err := q.exec(ctx, "qmp_capabilities", nil, nil); err != nil {
		return nil, err
	}
	return q, nil
}

func (q *qmp) readReply() (*qmpReply, error) {
	for {
		line, err := q.rd.ReadBytes('\n')
		if err != nil {
			return nil, err
		}
		r := &qmpReply{}
		if err := json.Unmarshal(line, r); err != nil {
			return nil, fmt.Errorf("qmp: bad reply %q: %w", line, err)
		}
		if r.Event != "" {
			continue
		}
		return r, nil
	}
}

// exec runs a command; file, when set, is passed along (SCM_RIGHTS) for
// getfd.
func (q *qmp) exec(ctx context.Context, cmd string, args any, file *os.File) (json.RawMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	if dl, ok := ctx.Deadline(); ok {
		_ = q.conn.SetDeadline(dl)
		defer q.conn.SetDeadline(timeZero)
	}
	if file != nil {
		_, _, err = q.conn.WriteMsgUnix(b, syscall.UnixRights(int(file.Fd())), nil)
	} else {
		_, err = q.conn.Write(b)
	}
	if err != nil {
		return nil, fmt.Errorf("qmp %s: %w", cmd, err)
	}
	r, err := q.readReply()
	if err != nil {
		return nil, fmt.Errorf("qmp %s: %w", cmd, err)
	}
	if r.Error != nil {
		return nil, fmt.Errorf("qmp %s: %s: %s", cmd, r.Error.Class, r.Error.Desc)
	}
	return r.Return, nil
}

func (q *qmp) close() { _ = q.conn.Close() }

// migrationStatus reads query-migrate's status and error.
func (q *qmp) migrationStatus(ctx context.Context) (status, errDesc string, err error) {
	raw, err := q.exec(ctx, "query-migrate", nil, nil)
	if err != nil {
		return "", "", err
	}
	var st struct {
		Status    string `json:"status"`
		ErrorDesc string `json:"error-desc"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return "", "", err
	}
	return st.Status, st.ErrorDesc, nil
}

func (q *qmp) runStatus(ctx context.Context) (string, error) {
	raw, err := q.exec(ctx, "query-status", nil, nil)
	if err != nil {
		return "", err
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return "", err
	}
	return st.Status, nil
}

var errMigrationFailed = errors.New("migration failed")
