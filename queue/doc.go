// Package queue is edgerelay's durable event queue and per-backend delivery scheduler, built on
// Badger (github.com/dgraph-io/badger/v4).
//
// Start with Open and Options. The relay calls Enqueue for every authenticated callback and
// answers the provider only when Enqueue returns: by then the event and one pending delivery per
// backend are fsynced. Concurrent Enqueues share one fsync (group commit): a single committer
// goroutine is the only writer of the database; it takes every request waiting for it and writes
// them in one transaction, which it first appends to the queue's journal (a redo log of two
// reused segment files, see journal.go); a syncer goroutine fdatasyncs the journal once for all
// the transactions written meanwhile and wakes their callers. Badger runs without syncs and is
// synced in the background at checkpoints; Open applies the journal's records after the last
// checkpoint again, so what a crash or power cut took from Badger's unsynced files comes back.
// On Linux a writeback loop starts the write-out of Badger's newest files every 20 ms
// (writeback_linux.go), so a checkpoint's sync finds little left to write and the journal's
// fsyncs do not queue behind it.
//
// Delivery is pulled: a delivery worker for a backend calls Next, which blocks until a delivery
// is due and allowed by the ordering rules, leases it (in memory only) and returns it with its
// event. The worker then reports the outcome with Ack, Retry, Dead or Release. Leases are never
// persisted, so after a crash or restart every delivery that was not acknowledged or dead-lettered
// is pending again, with the attempt count that was recorded for it.
//
// Ordering: deliveries of one backend that share a non-empty OrderKey go one at a time, in arrival
// order (event ids sort in arrival order). A delivery that has been attempted and is waiting for
// its retry time keeps the key; a dead letter releases it. A replayed dead letter goes back to
// its original arrival position: before every pending delivery of its key that has not been
// attempted yet, after one that has (it holds the key).
//
// Memory: each backend keeps at most Options.Window pending deliveries in memory (a prefix of its
// deliveries in arrival order) and streams the rest from Badger as room frees up. Because the
// window is a prefix, a backlog of more than Window deliveries all blocked behind their keys
// (for example one sender's flood whose first message is being retried) holds back later keys of
// that backend until the blocking delivery succeeds or becomes a dead letter; other backends are
// never affected. The default window (10000) makes this rare.
//
// Resident memory: Badger maps its value log (where bodies live) and its tables into memory, so
// every page the queue writes would stay in the relay's resident set until value-log GC or a
// compaction deletes its file, which takes seconds under a pass-through load and lasts as long as
// a backlog does. On Linux the queue asks the kernel (madvise MADV_PAGEOUT, every 250 ms) to
// reclaim the pages of the value-log files Badger has finished and synced, and once those of each
// table Badger has written; a body or block read later comes back from disk.
//
// Durability: Enqueue, Replay and Purge return after an fsync. Ack, Retry and Dead return once
// written (they survive a process crash at once, and a power cut after the next group commit);
// a lost Ack only means a repeated delivery, which at-least-once allows.
//
// Disk: Enqueue refuses (ErrDiskFull) before Badger's memory-mapped writes could reach the end of
// the file system, a ballast file gives a restart on a full disk room to open and drain, and an
// idle, drained queue is compacted back to its floor (space.go). Open reads the files first and
// refuses damaged ones by name without changing them, skipping the tables and finished value-log
// files recorded as known good and unchanged since (checked.go); it counts the backlog in the
// background (count.go). Check and Salvage are the offline tools (check.go, salvage.go); Check
// reads every file.
//
// The queue never performs HTTP and knows nothing of configuration files.
package queue
