// Package quarantine keeps callbacks that were refused for a wrong secret,
// so that an operator who fixes the secret can release them instead of
// losing them.
//
// Start with Open, which takes the directory (data_dir/quarantine), and
// Manager.Configure, which the relay calls with each channel's settings at
// start and after every reload. The relay calls Manager.Add from its
// auth-failure branch (only for the reasons Keeps accepts) and
// Manager.Release with a function that re-verifies a Record exactly as a
// live callback and enqueues it when it passes; the package itself never
// verifies, enqueues or delivers anything, and imports nothing of the relay.
//
// Storage: one directory per channel (0700) of append-only segment files
// (0600), each a sequence of CRC-checked records (see record.go), apart
// from the event queue and its journal. A channel's files never exceed its
// MaxSize: before an append that would, whole segments are dropped, oldest
// first. Records older than Keep are dropped by a sweep (and are invisible
// before it). Memory holds a few facts per segment (at most about 17 per
// channel), never one entry per record, so a flood of forged callbacks
// costs at most MaxSize of disk per channel and no memory. Deleting or
// releasing records rewrites the segments that held them (new file,
// fsync, rename). Appends are written at once (they survive a crash of the
// process) and synced within SyncInterval (a power cut may lose the last
// second); the refused callback was answered with an error either way, so
// the provider's own retries are the first line of defence and the
// quarantine the second.
package quarantine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Defaults of a channel's quarantine block.
const (
	DefaultMaxSize = 64 << 20
	DefaultKeep    = 72 * time.Hour
)

// Settings are one channel's quarantine block.
type Settings struct {
	// MaxSize bounds the channel's files in bytes (default DefaultMaxSize).
	MaxSize int64
	// Keep is how long a record is kept (default DefaultKeep).
	Keep time.Duration
}

func (s Settings) withDefaults() Settings {
	if s.MaxSize <= 0 {
		s.MaxSize = DefaultMaxSize
	}
	if s.Keep <= 0 {
		s.Keep = DefaultKeep
	}
	return s
}

// Options configures Open.
type Options struct {
	// Logger receives the package's log lines (nil discards them).
	Logger *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// SyncInterval is how often appended records are fsynced (default 1s).
	SyncInterval time.Duration
	// SweepInterval is how often records older than Keep are dropped
	// (default 1m).
	SweepInterval time.Duration
}

// Errors callers branch on.
var (
	// ErrNotFound: no kept record has this id.
	ErrNotFound = errors.New("quarantine: no such record")
	// ErrNoQuarantine: the channel has no quarantine block.
	ErrNoQuarantine = errors.New("quarantine: the channel has no quarantine block")
)

// kept are the failure reasons a quarantine keeps: the credential was
// present and well formed but did not match (a secret rotated on one side
// only, a clock, a claim). A missing credential, a malformed one, a client
// address or certificate outside the allowed ones, and internal errors
// are never kept: they are not what a fixed secret turns into a valid
// callback.
var kept = map[string]bool{
	"bad_signature":      true,
	"bad_credentials":    true,
	"expired_credential": true,
	"clock_skew":         true,
	"bad_claims":         true,
}

// Keeps reports whether a callback refused for reason is kept.
func Keeps(reason string) bool { return kept[reason] }

// Manager holds the quarantine of every channel that has one.
type Manager struct {
	dir  string
	log  *slog.Logger
	now  func() time.Time
	opts Options

	mu     sync.Mutex // guards stores
	stores map[string]*store

	seqMu sync.Mutex
	seq   uint64

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// Open prepares the quarantine directory dir (created 0700) and starts the
// background sync and sweep. No channel is open until Configure.
func Open(dir string, o Options) (*Manager, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = time.Second
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = time.Minute
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("quarantine: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("quarantine: %w", err)
	}
	m := &Manager{dir: dir, log: o.Logger, now: o.Now, opts: o, stores: map[string]*store{}, stop: make(chan struct{})}
	m.wg.Add(1)
	go m.background()
	return m, nil
}

// Configure opens the quarantine of every channel in channels, applies
// changed settings (a smaller MaxSize drops the oldest at once), and
// closes those of channels no longer listed. Their files stay on disk: a
// channel that gets its quarantine block back finds them again.
func (m *Manager) Configure(channels map[string]Settings) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for name, set := range channels {
		set = set.withDefaults()
		if st := m.stores[name]; st != nil {
			st.mu.Lock()
			st.set = set
			st.enforce(0)
			st.mu.Unlock()
			continue
		}
		st, err := openStore(m, name, filepath.Join(m.dir, dirName(name)), set)
		if err != nil {
			errs = append(errs, fmt.Errorf("quarantine of channel %q: %w", name, err))
			continue
		}
		m.stores[name] = st
		if n, size := st.totalLocked(); n > 0 {
			m.log.Info("quarantine holds callbacks from before the start", "channel", name, "callbacks", n, "bytes", size)
		}
	}
	for name, st := range m.stores {
		if _, ok := channels[name]; !ok {
			st.close()
			delete(m.stores, name)
		}
	}
	return errors.Join(errs...)
}

func (s *store) totalLocked() (int, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total()
}

// dirName turns a channel name into a directory name: letters, digits,
// '-' and '_' stay, every other byte becomes %XX.
func dirName(channel string) string {
	var b strings.Builder
	for i := 0; i < len(channel); i++ {
		c := channel[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// nextSeq hands out record sequence numbers: microseconds since the epoch,
// always above the last one handed out or found on disk.
func (m *Manager) nextSeq() uint64 {
	m.seqMu.Lock()
	defer m.seqMu.Unlock()
	s := uint64(m.now().UnixMicro())
	if s <= m.seq {
		s = m.seq + 1
	}
	m.seq = s
	return s
}

func (m *Manager) sawSeq(seq uint64) {
	m.seqMu.Lock()
	m.seq = max(m.seq, seq)
	m.seqMu.Unlock()
}

func (m *Manager) store(channel string) (*store, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.stores[channel]
	if st == nil {
		return nil, ErrNoQuarantine
	}
	return st, nil
}

func (m *Manager) all() []*store {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*store, 0, len(m.stores))
	for _, st := range m.stores {
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// Has reports whether channel has a quarantine.
func (m *Manager) Has(channel string) bool {
	_, err := m.store(channel)
	return err == nil
}

// Add keeps rec in its channel's quarantine and returns its id; false when
// the channel has none or the record cannot be kept (larger than MaxSize,
// a write error: logged). rec is encoded before Add returns.
func (m *Manager) Add(rec *Record) (string, bool) {
	st, err := m.store(rec.Channel)
	if err != nil {
		return "", false
	}
	return st.add(rec)
}

// Summary is a kept record without its headers and body.
type Summary struct {
	ID         string    `json:"id"`
	Channel    string    `json:"channel"`
	ReceivedAt time.Time `json:"received_at"`
	Reason     string    `json:"reason"`
	Method     string    `json:"method"`
	RequestURI string    `json:"request_uri"`
	RemoteAddr string    `json:"remote_addr"`
	BodyBytes  int       `json:"body_bytes"`
}

// Summarize returns rec's summary.
func Summarize(rec *Record) Summary {
	return Summary{ID: rec.ID, Channel: rec.Channel, ReceivedAt: rec.ReceivedAt, Reason: rec.Reason,
		Method: rec.Method, RequestURI: rec.RequestURI, RemoteAddr: rec.RemoteAddr, BodyBytes: len(rec.Body)}
}

// List returns up to limit records of channel ("" = every channel), oldest
// first (limit <= 0: all).
func (m *Manager) List(channel string, limit int) ([]Summary, error) {
	stores := m.all()
	if channel != "" {
		st, err := m.store(channel)
		if err != nil {
			return nil, err
		}
		stores = []*store{st}
	}
	out := []Summary{}
	errFull := errors.New("full")
	for _, st := range stores {
		st.opMu.Lock()
		err := st.each(func(_ segment, rec *Record) error {
			if limit > 0 && len(out) >= limit {
				return errFull
			}
			out = append(out, Summarize(rec))
			return nil
		})
		st.opMu.Unlock()
		if errors.Is(err, errFull) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// find locates the store and segment of id.
func (m *Manager) find(id string) (*store, segment, uint64, error) {
	seq, err := ParseID(id)
	if err != nil {
		return nil, segment{}, 0, err
	}
	for _, st := range m.all() {
		if g, ok := st.segmentOf(seq); ok {
			return st, g, seq, nil
		}
	}
	return nil, segment{}, 0, ErrNotFound
}

// Get returns the record id, headers and body included.
func (m *Manager) Get(id string) (*Record, error) {
	st, _, seq, err := m.find(id)
	if err != nil {
		return nil, err
	}
	st.opMu.Lock()
	defer st.opMu.Unlock()
	g, ok := st.segmentOf(seq) // again: a rewrite may have run meanwhile
	if !ok {
		return nil, ErrNotFound
	}
	cutoff := m.now().Add(-st.settings().Keep)
	var found *Record
	stop := errors.New("found")
	err = scanFile(g.path(st.dir), g.size, func(s uint64, rec *Record, _ int64) error {
		if s == seq {
			if !rec.ReceivedAt.Before(cutoff) {
				found = rec
				found.Channel = st.name
			}
			return stop
		}
		return nil
	})
	if err != nil && !errors.Is(err, stop) {
		return nil, err
	}
	if found == nil {
		return nil, ErrNotFound
	}
	return found, nil
}

// Delete removes the record id.
func (m *Manager) Delete(id string) error {
	st, g, seq, err := m.find(id)
	if err != nil {
		return err
	}
	st.opMu.Lock()
	defer st.opMu.Unlock()
	n, err := st.rewrite(g.first, func(s uint64, _ *Record) bool { return s == seq }, nil)
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// Purge removes every record of channel and returns how many there were.
func (m *Manager) Purge(channel string) (int, error) {
	st, err := m.store(channel)
	if err != nil {
		return 0, err
	}
	st.opMu.Lock()
	defer st.opMu.Unlock()
	return st.purge(), nil
}

// Release offers every record of channel, oldest first, to verify, which
// re-verifies it against the channel's current configuration and enqueues
// it when it passes (true). Released records are removed; the others stay.
// An error from verify (the queue cannot take events) stops the release:
// what was released until then is removed and counted, the rest stays.
// A crash between an enqueue and the removal leaves the record kept, and a
// second release enqueues it again (de-duplication by provider event id
// absorbs it).
func (m *Manager) Release(ctx context.Context, channel string, verify func(*Record) (bool, error)) (released, stillFailing int, err error) {
	st, err := m.store(channel)
	if err != nil {
		return 0, 0, err
	}
	st.opMu.Lock()
	defer st.opMu.Unlock()
	var cur uint64
	done := map[uint64]bool{}
	st.mu.Lock()
	st.releasing, st.releaseDropped = done, map[uint64]bool{}
	st.mu.Unlock()
	defer func() {
		st.mu.Lock()
		st.releasing, st.releaseDropped = nil, nil
		st.mu.Unlock()
	}()
	flush := func() error {
		st.mu.Lock()
		n := len(done)
		st.mu.Unlock()
		if n == 0 {
			return nil
		}
		// done is only written under mu; rewrite holds mu while it reads and
		// clears it.
		_, err := st.rewrite(cur, func(seq uint64, _ *Record) bool { return done[seq] }, func() { clear(done) })
		return err
	}
	err = st.each(func(g segment, rec *Record) error {
		if g.first != cur {
			if err := flush(); err != nil {
				return err
			}
			cur = g.first
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		// Claim the record before verifying it, unless the bound dropped its
		// segment meanwhile (it is counted as dropped then, never twice).
		seq, _ := ParseID(rec.ID)
		st.mu.Lock()
		present := slices.ContainsFunc(st.segs, func(x *segment) bool { return x.first == g.first })
		if present {
			done[seq] = true
		}
		st.mu.Unlock()
		if !present {
			return nil
		}
		ok, err := verify(rec)
		st.mu.Lock()
		if err != nil || !ok {
			delete(done, seq)
			if st.releaseDropped[seq] { // dropped for room while it was verified
				st.dropped.Add(1)
			}
		}
		delete(st.releaseDropped, seq)
		st.mu.Unlock()
		if err != nil {
			return err
		}
		if ok {
			released++
		} else {
			stillFailing++
		}
		return nil
	})
	if ferr := flush(); err == nil {
		err = ferr
	}
	return released, stillFailing, err
}

// ChannelStats are one channel's figures.
type ChannelStats struct {
	Channel   string
	Callbacks int
	Bytes     int64
	// Dropped counts records dropped for room since Open.
	Dropped uint64
}

// Stats returns the figures of every channel with a quarantine, by name.
func (m *Manager) Stats() []ChannelStats {
	var out []ChannelStats
	for _, st := range m.all() {
		n, size := st.totalLocked()
		out = append(out, ChannelStats{Channel: st.name, Callbacks: n, Bytes: size, Dropped: st.dropped.Load()})
	}
	return out
}

func (m *Manager) background() {
	defer m.wg.Done()
	syncT := time.NewTicker(m.opts.SyncInterval)
	defer syncT.Stop()
	sweepT := time.NewTicker(m.opts.SweepInterval)
	defer sweepT.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-syncT.C:
			for _, st := range m.all() {
				st.sync()
			}
		case <-sweepT.C:
			m.Sweep()
		}
	}
}

// Sweep drops the records older than their channel's Keep now (it also
// runs every SweepInterval).
func (m *Manager) Sweep() {
	now := m.now()
	for _, st := range m.all() {
		st.opMu.Lock()
		if n := st.expire(now); n > 0 {
			m.log.Info("quarantined callbacks expired", "channel", st.name, "dropped", n)
		}
		st.opMu.Unlock()
	}
}

// Close syncs and closes every channel's files. Idempotent.
func (m *Manager) Close() error {
	m.once.Do(func() {
		close(m.stop)
		m.wg.Wait()
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, st := range m.stores {
			st.close()
		}
	})
	return nil
}
