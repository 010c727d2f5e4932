// Package runstore keeps agent runs durable: each run, the model's replies
// that contained code, every completed step and each change of status are
// written to an embedded database in the state directory (runs.db) as they
// happen, so that a run outlives the process that ran it. After a crash a
// run that was running is reported interrupted (Recover), with the steps it
// completed, and Resume hands it back to a new process with its history.
//
// Several processes share one store: the HTTP server, the session daemon
// and `mcpruntime run` of the same workspace. Each registers as an owner
// while it has the store open (a flock the kernel drops when it dies), so
// that one process never takes another's live run for interrupted.
//
// # Why SQLite
//
// The store is SQLite through modernc.org/sqlite (pure Go, no cgo) in WAL
// mode with synchronous=FULL: each commit is synced, so a recorded step
// survives power loss as well as a crash. It was measured against bbolt
// (go.etcd.io/bbolt v1.4.3, the same two operations, runs and steps as
// JSON; each Update synced) with BenchmarkAppendStep and BenchmarkList on a
// 2-core AMD EPYC VM shared with other builds (ranges over 3 runs):
//
//	append a step (1 KiB output, synced)  SQLite 130–290 µs   bbolt 370–490 µs
//	list 1,000 runs                       SQLite 2.6–4.5 ms   bbolt 1.4–2.0 ms
//
// Appending is the operation that happens on every step, and SQLite's WAL
// commit (one sync) beats bbolt's (two: pages, then meta). Listing is
// slower but a few milliseconds for a thousand runs. What decided it:
// bbolt holds an exclusive lock on its file for as long as a process has
// it open, so the server, the session daemon and `run --resume` could not
// use one store at once, while SQLite serializes writers per transaction
// (busy_timeout 10s). The price is binary size: a program that only opens
// a database is 9.7 MB with SQLite, 3.1 MB with bbolt.
package runstore
