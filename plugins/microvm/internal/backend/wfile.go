package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"

	"github.com/mcpruntime/mcpruntime/plugins/microvm/internal/proto"
	"github.com/mcpruntime/mcpruntime/sdk/nofollow"
)

const (
	// chunk is the largest file piece sent in one control message.
	chunk = 4 << 20
	// smallFile is the largest file sent together with others in one
	// request (a workspace of many small files costs a few round trips,
	// not one per file).
	smallFile  = 64 << 10
	batchBytes = 1 << 20
	batchFiles = 512
)

// skippable: the file was removed, or swapped for a symlink or something
// else, on the host since it was looked at; its event comes next time.
func skippable(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, nofollow.ErrSymlink) || errors.Is(err, nofollow.ErrNotRegular)
}

// pushFiles sends the regular files rels, each opened without following
// symlinks and sent as fstat saw it once open (a file growing meanwhile is
// sent up to that size; its event makes the next push send it again), and
// records them as cur says once the guest has them.
func (s *syncer) pushFiles(ctx context.Context, a *agentClient, root *nofollow.Dir, rels []string, cur map[string]hostState) error {
	var batch []proto.File
	var batchRels []string
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if _, err := a.call(ctx, &proto.Msg{Op: proto.OpWriteBatch, Tree: s.tree, Files: batch}); err != nil {
			return err
		}
		for _, rel := range batchRels {
			s.setKnown(rel, cur[rel])
			s.pushStats.Sent++
		}
		batch, batchRels, size = nil, nil, 0
		return nil
	}
	for _, rel := range rels {
		f, fi, err := root.Open(rel)
		if err != nil {
			if skippable(err) {
				continue
			}
			return fmt.Errorf("workspace file %s: %w", rel, err)
		}
		if fi.Size() <= smallFile {
			data := make([]byte, fi.Size())
			n, err := io.ReadFull(f, data)
			f.Close()
			if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
				return fmt.Errorf("workspace file %s: %w", rel, err)
			}
			batch = append(batch, proto.File{Path: s.guest(rel), Mode: uint32(fi.Mode().Perm()), Data: data[:n]})
			batchRels = append(batchRels, rel)
			if size += n; size >= batchBytes || len(batch) >= batchFiles {
				if err := flush(); err != nil {
					return err
				}
			}
			continue
		}
		if fi.Size() >= lazyMin {
			ok, err := s.placeholder(ctx, a, rel, fi.Size(), uint32(fi.Mode().Perm()))
			if err != nil {
				f.Close()
				return err
			}
			if ok {
				f.Close()
				s.setKnown(rel, cur[rel])
				s.pushStats.Sent++
				s.pushStats.Lazy++
				continue
			}
		}
		err = s.pushLarge(ctx, a, f, fi, rel)
		f.Close()
		if err != nil {
			return err
		}
		s.setKnown(rel, cur[rel])
		s.pushStats.Sent++
	}
	return flush()
}

// pushLarge sends f's data extents in chunks; holes are not sent (the
// guest truncates the file to its size, so they stay holes there).
func (s *syncer) pushLarge(ctx context.Context, a *agentClient, f *os.File, fi fs.FileInfo, rel string) error {
	size := fi.Size()
	perm := uint32(fi.Mode().Perm())
	started := false // the first piece is at offset 0: it truncates the guest's file
	err := forExtents(f, size, chunk, func(off int64, data []byte) error {
		if !started && off > 0 {
			if _, err := a.call(ctx, &proto.Msg{Op: proto.OpWrite, Tree: s.tree, Path: s.guest(rel), Mode: perm}); err != nil {
				return err
			}
		}
		started = true
		_, err := a.call(ctx, &proto.Msg{Op: proto.OpWrite, Tree: s.tree, Path: s.guest(rel), Offset: off, Data: data, Mode: perm})
		return err
	})
	if err != nil {
		return fmt.Errorf("workspace file %s: %w", rel, err)
	}
	off := size
	if !started {
		off = 0 // all hole: this piece truncates
	}
	_, err = a.call(ctx, &proto.Msg{Op: proto.OpWrite, Tree: s.tree, Path: s.guest(rel), Offset: off, Final: true, Length: size, Mode: perm})
	return err
}

// forExtents calls fn with f's data up to size, in pieces of at most
// piece bytes, skipping holes (SEEK_DATA/SEEK_HOLE; where the file system
// cannot say, everything is data). A file that shrinks meanwhile ends
// early: its change event brings the rest.
func forExtents(f *os.File, size int64, piece int, fn func(off int64, data []byte) error) error {
	buf := make([]byte, min(int64(piece), max(size, 1)))
	fd := int(f.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return nil // only a hole is left
		}
		if err != nil {
			data = off
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil || hole > size {
			hole = size
		}
		for p := data; p < hole; {
			n, err := f.ReadAt(buf[:min(int64(len(buf)), hole-p)], p)
			if n == 0 {
				if err == io.EOF || err == nil {
					return nil
				}
				return err
			}
			if err := fn(p, buf[:n]); err != nil {
				return err
			}
			p += int64(n)
		}
		off = hole
	}
	return nil
}
