package runstore

import (
	"encoding/binary"
	"encoding/json"
	"path/filepath"
	"sort"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpruntime/mcpruntime/core/agent"
)

// boltStore is the bbolt candidate the SQLite store was measured against:
// the same two operations, runs as JSON in one bucket, steps in a bucket
// per run keyed by step number.
type boltStore struct{ db *bolt.DB }

func openBolt(b *testing.B) *boltStore {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "runs.bolt"), 0o644, &bolt.Options{Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists([]byte("runs")); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists([]byte("steps"))
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return &boltStore{db: db}
}

func (s *boltStore) create(r Run) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte("runs")).Put([]byte(r.ID), data); err != nil {
			return err
		}
		_, err := tx.Bucket([]byte("steps")).CreateBucketIfNotExists([]byte(r.ID))
		return err
	})
}

func (s *boltStore) appendStep(id string, st *agent.Step) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		k := make([]byte, 8)
		binary.BigEndian.PutUint64(k, uint64(st.N))
		return tx.Bucket([]byte("steps")).Bucket([]byte(id)).Put(k, data)
	})
}

func (s *boltStore) list() ([]Run, error) {
	var out []Run
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("runs")).ForEach(func(_, v []byte) error {
			var r Run
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out, err
}

func BenchmarkBoltAppendStep(b *testing.B) {
	s := openBolt(b)
	if err := s.create(Run{ID: "r-1", Task: "t", Started: time.Now()}); err != nil {
		b.Fatal(err)
	}
	st := benchStep()
	b.ResetTimer()
	for i := range b.N {
		st.N = i + 1
		if err := s.appendStep("r-1", st); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBoltList(b *testing.B) {
	s := openBolt(b)
	for i := range benchRuns {
		if err := s.create(benchRun(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		if l, err := s.list(); err != nil || len(l) != benchRuns {
			b.Fatal(len(l), err)
		}
	}
}
