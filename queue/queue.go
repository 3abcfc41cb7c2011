package queue

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Sentinel errors callers branch on.
var (
	// ErrFull is returned by Enqueue when the database is over Options.MaxSize.
	ErrFull = errors.New("queue: full")
	// ErrClosed is returned by every operation once Close has been called.
	ErrClosed = errors.New("queue: closed")
	// ErrNotFound is returned when an event or dead letter does not exist.
	ErrNotFound = errors.New("queue: not found")
	// ErrLeaseDone is returned by Ack, Retry and Dead on a lease that was already completed or
	// released, or that belongs to another queue.
	ErrLeaseDone = errors.New("queue: lease already completed")
)

// Defaults of Options.
const (
	DefaultGCInterval = time.Minute
	DefaultWindow     = 10000
)

// Badger tuning. The relay must stay within about 150 MB RSS at 10k events/s, so the memory
// Badger may take is bounded explicitly instead of using its defaults (64 MB memtables x 5,
// 256 MB block cache, 1 GB value-log files). Measured with TestSoakRSS (10k events/s of 1 KB
// bodies, enqueued and delivered): 16 MB memtables peaked near 300 MB RSS, 4 MB ones at about
// 135-150 MB for the whole test process.
//   - memtables: 4 MB x 3. Bodies live in the value log (see valueThreshold), so a memtable holds
//     only keys, small delivery records and value pointers (a few thousand events). Badger's
//     memtable flush and compaction buffers grow with the memtable (about 3x its size), which is
//     what dominated the heap with larger ones; the third memtable absorbs bursts while two are
//     being flushed.
//   - valueThreshold 1 KB: event records (headers + body, typically 1-5 KB) go to the value log,
//     written once and never rewritten by LSM compaction; delivery records, de-duplication
//     entries and other small keys stay in the LSM tree, which stays small and cheap to compact.
//     (Keeping bodies inline up to 64 KB was measured: more compaction, more heap.)
//   - value-log files of 16 MB: value-log files are memory-mapped, so every written page of a
//     file counts as resident until GC deletes the file; small files (and GC after every file's
//     worth of writes, see gcLoop) keep that bounded. A value must fit in one file, so bodies up
//     to about 15 MB are possible.
//   - no block compression and no block cache: the LSM tree holds small, short-lived records and
//     is read through mmap; compressing it would only cost CPU. The index cache is bounded (8 MB)
//     so a large backlog cannot grow the heap with table indexes and bloom filters.
//   - 2 compactors and 2 goroutines for streams: this runs on small (2-core) machines.
//   - every table below level 0 is 2 MB (Badger doubles the size at each level beyond the first
//     by default): a compaction builds each new table in memory, in buffers of twice the table's
//     size, several at once, so the 8 MB tables of the deeper levels of a million-event backlog
//     (about 200 MB of tables) kept 130 MB of heap live during compactions; 2 MB tables cost
//     more, smaller files.
//   - no conflict detection: the committer goroutine is the only writer.
//
// In-memory mode keeps values inline, so its memtables are larger to hold bodies (a value is
// limited to 1 MB there, and a transaction to 15% of a memtable).
const (
	memTableSize      = 4 << 20
	numMemtables      = 3
	valueThreshold    = 1 << 10
	valueLogFileSize  = 16 << 20
	indexCacheSize    = 8 << 20
	inMemMemTableSize = 64 << 20

	// maxBatchOps bounds how many requests the committer takes into one batch.
	maxBatchOps = 4096
	// syncLinger is the longest a durable commit waits for others to share
	// its fsync; syncEnough commits waiting end the wait at once.
	syncLinger = 500 * time.Microsecond
	// keepEventBytes: events with bodies up to this size stay in memory
	// while their deliveries are in the scheduler's window (the window
	// bounds how many), so the first lease needs no read from disk.
	keepEventBytes = 16 << 10
	// keepEventsBelow: only while a backend keeps up (fewer deliveries than
	// this in its window) are events kept; a backlog reads them from disk.
	keepEventsBelow = 512
	syncEnough      = 48
	// txnBudget bounds the entries of one Badger transaction, well under Badger's own limit
	// (15% of the memtable / node size), so an event's writes are never split across two
	// transactions by ErrTxnTooBig.
	txnBudgetEntries = 2000
	txnBudgetBytes   = 256 << 10
	// gcDiscardRatio: a value-log file is rewritten when at least half of it is garbage.
	gcDiscardRatio = 0.5
	// gcMaxPause bounds the pause between two rewrites of a cycle (see gcLoop).
	gcMaxPause = time.Second
)

// Options configures Open.
type Options struct {
	// Dir is the Badger directory, created if missing. Required unless InMemory.
	Dir string
	// InMemory runs Badger without files, for tests. Nothing survives Close, and an event record
	// (headers + body) is limited to 1 MB by Badger in this mode. Default false.
	InMemory bool
	// MaxSize is the disk use in bytes (LSM tree + value log + WAL, as allocated on disk) at or
	// beyond which Enqueue returns ErrFull. 0 (default) means no limit. Disk use is measured
	// about every second and estimated in between from the bytes written; in InMemory mode it
	// is the estimated size of the stored events.
	MaxSize int64
	// Retain is how long a fully delivered event stays readable through Get. 0 (default) deletes
	// it as soon as its last delivery is acknowledged.
	Retain time.Duration
	// GCInterval is the period of Badger's value-log garbage collection, which runs in its own
	// goroutine. 0 means DefaultGCInterval (1 minute); negative disables it. Besides the period,
	// a GC cycle also runs once a value-log file's worth of events (16 MB) has been written
	// since the last one, so disk and page-cache use stay bounded under load.
	GCInterval time.Duration
	// Window is the number of pending deliveries per backend held in memory by the scheduler;
	// the rest are streamed from Badger in arrival order as room frees up. 0 means DefaultWindow
	// (10000). Replayed dead letters may briefly push a backend over it.
	Window int
	// Clock supplies the time for due times, retries, de-duplication ages and retention.
	// nil means the real clock.
	Clock Clock
	// Logger receives the queue's and Badger's log lines. nil discards them.
	Logger *slog.Logger

	// tweak lets white-box tests adjust Badger's options (small files to exercise GC).
	tweak func(*badger.Options)
	// segmentSize is the journal's segment size (default defaultSegmentSize); tests make it small.
	segmentSize int64
	// noOverlay (tests of Badger's value log) writes every event to Badger at once.
	noOverlay bool
	// noWriteback (tests) leaves the write-out of Badger's files to checkpoints (writebackLoop).
	noWriteback bool
	// noUnmap (benchmarks) keeps the writeback loop from unmapping the files Badger is writing.
	noUnmap bool
	// countGate (tests) holds the background count of the backlog until it is closed.
	countGate chan struct{}
	// checkedEvery (tests) replaces how often checkpoints rewrite the record of known good
	// files (checked.go).
	checkedEvery time.Duration
}

// Event is one callback stored by the queue.
type Event struct {
	// ID is assigned by Enqueue: 32 URL-safe characters, the first 16 a sequence number that
	// sorts in arrival order within one database, the last 16 the database's random instance id,
	// so ids are unique across restarts and across relay instances.
	ID string
	// Channel and Provider name where the callback came from.
	Channel, Provider string
	// ProviderEventID is the de-duplication key within the channel ("" = no de-duplication).
	ProviderEventID string
	// OrderKey groups events that must be delivered one at a time in arrival order on each
	// backend ("" = unordered).
	OrderKey string
	// ReceivedAt is when the callback arrived; zero means the queue clock's Now at Enqueue.
	ReceivedAt time.Time
	// Method is the HTTP method of the callback.
	Method string
	// Path is the request target as received: path + "?" + raw query. Delivery fills a backend
	// URL's {path} and {query} from it.
	Path string
	// Header holds the callback's headers.
	Header map[string][]string
	// Body holds the raw body bytes.
	Body []byte
	// Backends lists the backends the event fans out to; each gets its own delivery.
	// Duplicates are ignored.
	Backends []string
}

// EnqueueResult is the outcome of Enqueue.
type EnqueueResult struct {
	// ID is the stored event's id, or for a duplicate the id of the original event.
	ID string
	// Duplicate reports that nothing was stored because the event was seen within the window.
	Duplicate bool
}

// Queue is the durable queue. Its methods are safe for concurrent use.
type Queue struct {
	o      Options
	clock  Clock
	log    *slog.Logger
	db     *badger.DB
	window int

	instance string // 16 hex chars
	seq      uint64 // last sequence handed out; committer only
	seqDirty bool   // committer only

	absDir             string // Dir made absolute, as /proc/self/maps names files; "" InMemory
	pageOutUnsupported bool   // the kernel rejected MADV_PAGEOUT; sizeLoop only
	// tablesSeen holds the tables mapped at the last page-out, true once paged out; sizeLoop only.
	tablesSeen map[uint64]bool

	// mu guards closed and the ops channel sends, so nothing is sent once Close has begun.
	mu       sync.RWMutex
	closed   bool
	ops      chan *op
	toSync   chan []*op // committed batches waiting for an fsync
	writeMu  sync.Mutex // held while a batch is written, and while value-log GC runs
	bw       *writer    // the committer's writer, reused (batchWriter); with writeMu
	closing  chan struct{}
	wg       sync.WaitGroup
	senders  sync.WaitGroup // submits between the closed check and their send
	once     sync.Once
	closeErr error

	schedMu sync.Mutex
	scheds  map[string]*sched

	sizeMeasured atomic.Int64 // disk use at the last measurement
	sizeSince    atomic.Int64 // bytes written since the last measurement
	live         atomic.Int64 // bytes of the stored event records (see space.go)
	freeMeasured atomic.Int64 // free space of the file system at the last measurement
	freeSince    atomic.Int64 // bytes of event records enqueued since that measurement
	freeUnknown  atomic.Bool  // statfs failed: no admission by free space
	deletes      atomic.Int64 // event records deleted since Open

	// sizeLoop's state for reclaiming an idle queue (space.go).
	reclaimCommits uint64
	reclaimQuiet   time.Time
	reclaimDeletes int64
	reclaimKick    chan struct{}

	commits atomic.Uint64 // events committed
	syncs   atomic.Uint64 // fsyncs done by the committer
	gcRuns  atomic.Uint64 // value-log GC cycles (tests)

	// notified is the highest event id whose new deliveries have been handed to the schedulers.
	// A delivery with a higher id is committed but its Enqueue hook has not run yet.
	notified atomic.Pointer[string]

	// jr is the journal (nil InMemory): see journal.go.
	jr *journal
	// ov holds new events' records until a checkpoint (nil InMemory): see overlay.go.
	ov *overlay
	// skipCloseCheckpoint (tests) makes Close leave the journal as a crash would.
	skipCloseCheckpoint bool

	// known is what Open learnt of the finished files (nil InMemory): see checked.go.
	// recordedAt is when the record of known good files was last written (cpMu).
	known      *knownFiles
	recordedAt time.Time
	// lastCheck is the report of Open's check (tests).
	lastCheck *CheckReport
	// counted is closed once the backlog found at Open is counted (count.go).
	counted chan struct{}

	vlogSinceGC atomic.Int64  // bytes of event records written since the last GC cycle
	gcKick      chan struct{} // runs a GC cycle before the period ends
}

// Open opens (or creates) the queue and loads the first pending deliveries of every backend.
// The backlog is counted in the background: Stats, LiveBytes and admission by MaxSize wait for
// that count (about a second per million deliveries).
func Open(o Options) (*Queue, error) {
	if !o.InMemory && o.Dir == "" {
		return nil, errors.New("queue: open: Dir is required unless InMemory")
	}
	q := &Queue{
		o:      o,
		clock:  o.Clock,
		log:    o.Logger,
		window: o.Window,
		ops:    make(chan *op, maxBatchOps),
		toSync: make(chan []*op, 64),
		gcKick: make(chan struct{}, 1),

		reclaimKick: make(chan struct{}, 1),
		closing:     make(chan struct{}),
		counted:     make(chan struct{}),
		scheds:      map[string]*sched{},
	}
	if q.clock == nil {
		q.clock = RealClock{}
	}
	if q.log == nil {
		q.log = slog.New(slog.DiscardHandler)
	}
	if q.window <= 0 {
		q.window = DefaultWindow
	}
	var bo badger.Options
	if o.InMemory {
		bo = badger.DefaultOptions("").WithInMemory(true).WithMemTableSize(inMemMemTableSize)
	} else {
		if err := q.prepareDir(); err != nil {
			return nil, fmt.Errorf("queue: open: %w", err)
		}
		abs, err := filepath.Abs(o.Dir)
		if err != nil {
			return nil, fmt.Errorf("queue: open: %w", err)
		}
		q.absDir = abs
		if err := q.checkFiles(); err != nil {
			return nil, err
		}
		bo = badger.DefaultOptions(o.Dir).
			WithVerifyValueChecksum(true).
			WithMemTableSize(memTableSize).
			WithValueThreshold(valueThreshold).
			WithValueLogFileSize(valueLogFileSize)
	}
	bo = bo.WithSyncWrites(false). // the journal is synced once per group of commits; Badger at checkpoints
					WithNumMemtables(numMemtables).
					WithNumCompactors(2).
					WithNumGoroutines(2).
					WithCompression(options.None).
					WithBlockCacheSize(0).
					WithIndexCacheSize(indexCacheSize).
					WithDetectConflicts(false).
					WithMetricsEnabled(false).
					WithLogger(q.badgerLogger())
	bo.TableSizeMultiplier = 1 // no setter in Badger's Options
	if o.tweak != nil {
		o.tweak(&bo)
	}
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("queue: open badger: %w", err)
	}
	q.db = db
	if !o.InMemory {
		if err := q.openJournal(); err != nil {
			db.Close()
			return nil, err
		}
		if !o.noOverlay {
			q.ov = newOverlay()
		}
	}
	if err := q.loadMeta(); err != nil {
		q.closeFiles()
		return nil, err
	}
	wm := q.formatID(q.seq)
	q.notified.Store(&wm)
	if err := q.loadBackends(); err != nil {
		q.closeFiles()
		return nil, err
	}
	// The backlog is counted from what is stored now, before anything else is committed, while
	// the queue already runs (count.go).
	countTxn := q.db.NewTransaction(false)
	if q.jr != nil {
		// Everything replayed or written by loadMeta is made durable, and a new epoch starts.
		if err := q.checkpointAll(); err != nil {
			countTxn.Discard()
			q.closeFiles()
			return nil, fmt.Errorf("queue: open: checkpoint: %w", err)
		}
		q.wg.Add(1)
		go q.checkpointer()
		if !o.noWriteback {
			q.wg.Add(1)
			go q.writebackLoop()
		}
	}
	q.measureSize()
	if !o.InMemory {
		q.measureFree()
	}
	q.reclaimQuiet = time.Now()
	q.wg.Add(4)
	go q.countBacklog(countTxn)
	go q.committer()
	go q.syncer()
	go q.sizeLoop()
	if gi := o.GCInterval; gi >= 0 && !o.InMemory {
		if gi == 0 {
			gi = DefaultGCInterval
		}
		q.wg.Add(1)
		go q.gcLoop(gi)
	}
	if o.Retain > 0 {
		q.wg.Add(1)
		go q.reapLoop()
	}
	return q, nil
}

// loadMeta reads (or creates) the instance id and the last sequence number.
func (q *Queue) loadMeta() error {
	err := q.db.Update(func(txn *badger.Txn) error {
		it, err := txn.Get(keyInstance)
		switch {
		case err == nil:
			v, err := it.ValueCopy(nil)
			if err != nil {
				return err
			}
			q.instance = hex.EncodeToString(v)
		case errors.Is(err, badger.ErrKeyNotFound):
			b := make([]byte, 8)
			if _, err := rand.Read(b); err != nil {
				return err
			}
			q.instance = hex.EncodeToString(b)
			if err := txn.Set(keyInstance, b); err != nil {
				return err
			}
		default:
			return err
		}
		it, err = txn.Get(keySeq)
		switch {
		case err == nil:
			v, err := it.ValueCopy(nil)
			if err != nil {
				return err
			}
			if len(v) == 8 {
				q.seq = binary.BigEndian.Uint64(v)
			}
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		return nil
	})
	if err == nil {
		err = q.db.Sync()
	}
	if err != nil {
		return fmt.Errorf("queue: open: read metadata: %w", err)
	}
	return nil
}

// sched returns the scheduler of backend, creating it.
func (q *Queue) sched(backend string) *sched {
	q.schedMu.Lock()
	defer q.schedMu.Unlock()
	s := q.scheds[backend]
	if s == nil {
		s = newSched(q, backend)
		q.scheds[backend] = s
	}
	return s
}

func (q *Queue) allScheds() []*sched {
	q.schedMu.Lock()
	defer q.schedMu.Unlock()
	out := make([]*sched, 0, len(q.scheds))
	for _, s := range q.scheds {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// Close stops the queue: pending requests are finished, Next callers get ErrClosed, background
// goroutines stop and Badger is closed. Leases still out are dropped (their deliveries are
// pending at the next Open). Close is idempotent.
func (q *Queue) Close() error {
	q.once.Do(func() {
		q.mu.Lock()
		q.closed = true
		q.mu.Unlock()
		q.senders.Wait()
		close(q.closing)
		for _, s := range q.allScheds() {
			s.mu.Lock()
			s.broadcast()
			s.mu.Unlock()
		}
		q.wg.Wait()
		var cpErr error
		if q.jr != nil && !q.skipCloseCheckpoint {
			// The next Open has nothing to replay.
			cpErr = q.checkpointAll()
		}
		// Readers (Get, DeadLetters, Next loading an event) hold mu.RLock around database
		// access; taking the write lock waits for them.
		q.mu.Lock()
		q.closeErr = errors.Join(cpErr, q.closeFiles())
		q.mu.Unlock()
		if q.closeErr == nil && q.known != nil && !q.skipCloseCheckpoint {
			// Badger is closed: every table and value-log file but the newest is finished.
			names, err := finishedAtClose(q.o.Dir)
			if err == nil {
				err = q.recordFinished(names)
			}
			if err != nil {
				q.log.Warn("queue: record of known good files not written; the next start reads every file", "err", err)
			}
		}
		if q.closeErr != nil {
			q.closeErr = fmt.Errorf("queue: close: %w", q.closeErr)
		}
	})
	return q.closeErr
}

// view runs fn in a read transaction unless the queue is closed.
func (q *Queue) view(fn func(txn *badger.Txn) error) error {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return ErrClosed
	}
	return q.db.View(fn)
}

// nextID hands out the next event id. Committer only.
func (q *Queue) nextID(now time.Time) string {
	// A hybrid clock: microseconds since the epoch, but always above the last one handed out,
	// so ids keep arrival order even if the clock steps back or the process restarts.
	s := uint64(now.UnixMicro())
	if s <= q.seq {
		s = q.seq + 1
	}
	q.seq = s
	q.seqDirty = true
	return q.formatID(s)
}

func (q *Queue) formatID(seq uint64) string {
	var b [32]byte
	hex.Encode(b[:16], binary.BigEndian.AppendUint64(nil, seq))
	copy(b[16:], q.instance)
	return string(b[:])
}

// SyncStats returns the number of events committed and of fsyncs done since Open; their ratio
// is the group-commit factor.
func (q *Queue) SyncStats() (commits, syncs uint64) {
	return q.commits.Load(), q.syncs.Load()
}

// StoreSkipped is the number of events whose deliveries were all completed while the events were
// still in the overlay: made durable by the journal alone, never written to Badger nor read back
// from it (overlay.go). Under a pass-through load most events should take this path.
func (q *Queue) StoreSkipped() uint64 {
	if q.ov == nil {
		return 0
	}
	return q.ov.skipped.Load()
}

// openJournal opens the journal and applies what it holds beyond the last checkpoint.
func (q *Queue) openJournal() error {
	jr, err := openJournal(q.o.Dir, q.o.segmentSize)
	if err != nil {
		return fmt.Errorf("queue: open journal: %w", err)
	}
	if jr.fs, err = newFdsyncer(); err != nil {
		q.log.Info("queue: the journal syncs with fdatasync, not through AIO", "reason", err)
	}
	// The records go through a writer like the committer's; q.jr is not set yet, so they are
	// not journaled again.
	w := newWriter(q)
	records, mutations, last, err := jr.replay(func(set bool, e *badger.Entry) error {
		if set {
			return w.set(e)
		}
		return w.delete(e.Key)
	})
	if err == nil {
		err = w.commit()
	} else {
		w.txn.Discard()
	}
	if err != nil {
		jr.close()
		return fmt.Errorf("queue: replay journal: %w", err)
	}
	if records > 0 {
		q.log.Warn("queue: journal replayed after an unclean stop", "records", records,
			"mutations", mutations, "from_epoch", jr.cp+1, "to_epoch", last)
	}
	jr.epoch = last
	q.jr = jr
	return nil
}

// closeFiles closes Badger and the journal.
func (q *Queue) closeFiles() error {
	err := q.db.Close()
	if q.jr != nil {
		q.jr.close()
	}
	return err
}
