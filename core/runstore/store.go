package runstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// FileName is the store's file in a state directory.
const FileName = "runs.db"

// schemaVersion is PRAGMA user_version of a store this code wrote.
const schemaVersion = 1

// Store is the run store of one state directory. Its methods are safe for
// concurrent use, and several processes may open the same store.
type Store struct {
	db    *sql.DB
	owner *owner
}

// Open opens (creating if need be) the store in stateDir and registers this
// process as one of its owners until Close.
func Open(ctx context.Context, stateDir string) (*Store, error) {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return nil, fmt.Errorf("run store: %w", err)
	}
	path := filepath.Join(stateDir, FileName)
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("run store: state dir %q must not contain '?'", stateDir)
	}
	// WAL lets readers go on while a step is written; synchronous=FULL
	// syncs every commit, so a recorded step survives a power cut, not only
	// a crash. _txlock=immediate takes the write lock when a transaction
	// begins, so two processes never deadlock upgrading read locks.
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("run store %s: %w", path, err)
	}
	// One connection: writes are serialized anyway, and every connection
	// of an in-process SQLite costs its own page cache.
	db.SetMaxOpenConns(1)
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("run store %s: %w", path, err)
	}
	o, err := claimOwner(filepath.Join(stateDir, "runs.owners"))
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Store{db: db, owner: o}, nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	var v int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("schema version: %w", err)
	}
	switch {
	case v == schemaVersion:
		return nil
	case v > schemaVersion:
		return fmt.Errorf("written by a newer mcpruntime (schema %d, this one knows %d)", v, schemaVersion)
	}
	_, err := db.ExecContext(ctx, `
CREATE TABLE IF NOT EXISTS runs (
	id       TEXT PRIMARY KEY,
	task     TEXT NOT NULL,
	backend  TEXT NOT NULL DEFAULT '',
	session  TEXT NOT NULL DEFAULT '',
	status   TEXT NOT NULL,
	owner    TEXT NOT NULL DEFAULT '',
	started  INTEGER NOT NULL,
	finished INTEGER,
	result   BLOB,
	error    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS runs_started ON runs(started);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
CREATE TABLE IF NOT EXISTS turns (
	run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	turn   INTEGER NOT NULL,
	reply  TEXT NOT NULL,
	PRIMARY KEY (run_id, turn)
);
CREATE TABLE IF NOT EXISTS steps (
	run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	step   INTEGER NOT NULL,
	turn   INTEGER NOT NULL,
	data   BLOB NOT NULL,
	PRIMARY KEY (run_id, step)
);
PRAGMA user_version = 1;`)
	if err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	return nil
}

// Close releases the store; runs this process still marks running are
// taken for interrupted by the next process that looks.
func (s *Store) Close() error {
	err := s.owner.release()
	if cerr := s.db.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("run store close: %w", cerr)
	}
	return err
}

// tx runs f in a write transaction.
func (s *Store) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	return tx.Commit()
}
