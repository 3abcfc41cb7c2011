package quarantine

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// store is one channel's quarantine: a directory of append-only segment
// files, oldest first. Only per-segment facts are held in memory, never one
// entry per record, so a flood costs disk (bounded by MaxSize) and no
// memory.
//
// Locks: opMu serialises the operations that rewrite or list segments
// (release, delete, purge, the expiry sweep); mu guards segs and the active
// file, and is held by Add. A rewrite takes mu only for its last step.
type store struct {
	name string
	dir  string
	log  *slog.Logger
	m    *Manager

	opMu sync.Mutex

	mu     sync.Mutex
	set    Settings
	segs   []*segment // oldest first; the last one is the active one when active != nil
	active *os.File   // the last segment, open for appending; nil until the next Add
	dirty  bool       // appended since the last sync
	closed bool
	// releasing holds the records a running release has enqueued and not
	// removed yet: if the bound drops their segment first, they are not
	// counted as dropped.
	releasing map[uint64]bool
	// releaseDropped are records of releasing whose segment was dropped
	// while they were being verified: counted as dropped only if they fail.
	releaseDropped map[uint64]bool

	dropped atomic.Uint64 // records dropped for room
}

// segment is a file of records, named by the sequence number of its first
// record. Its facts are kept up to date by Add and by rewrites.
type segment struct {
	first, last    uint64
	count          int
	size           int64
	oldest, newest time.Time
}

func (g *segment) path(dir string) string {
	return filepath.Join(dir, fmt.Sprintf("%016x.seg", g.first))
}

func (g *segment) add(seq uint64, at time.Time, n int64) {
	if g.count == 0 || at.Before(g.oldest) {
		g.oldest = at
	}
	if g.count == 0 || at.After(g.newest) {
		g.newest = at
	}
	g.last = seq
	g.count++
	g.size += n
}

// segmentSize is how large a segment grows before a new one starts: an
// eighth of the channel's bound (so dropping the oldest gives back about
// that much), between 64 KiB and 8 MiB.
func segmentSize(maxSize int64) int64 {
	return min(max(maxSize/8, 64<<10), 8<<20)
}

// openStore loads the segments of dir, cutting off a torn last record (a
// crash in the middle of an append) and dropping unreadable files.
func openStore(m *Manager, name, dir string, set Settings) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	s := &store{name: name, dir: dir, log: m.log.With("channel", name), m: m, set: set}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		n := e.Name()
		if strings.HasSuffix(n, ".tmp") {
			os.Remove(filepath.Join(dir, n)) // an interrupted rewrite; the original is intact
			continue
		}
		first, err := strconv.ParseUint(strings.TrimSuffix(n, ".seg"), 16, 64)
		if !strings.HasSuffix(n, ".seg") || err != nil || e.IsDir() {
			continue
		}
		g := &segment{first: first}
		if err := s.load(g); err != nil {
			return nil, err
		}
		if g.count == 0 {
			os.Remove(g.path(dir))
			continue
		}
		s.segs = append(s.segs, g)
		m.sawSeq(g.last)
	}
	sort.Slice(s.segs, func(i, j int) bool { return s.segs[i].first < s.segs[j].first })
	s.mu.Lock()
	s.enforce(0)
	s.mu.Unlock()
	return s, nil
}

// load scans a segment file, filling g, and truncates it after its last
// whole record.
func (s *store) load(g *segment) error {
	path := g.path(s.dir)
	var good int64
	err := scanFile(path, -1, func(seq uint64, rec *Record, end int64) error {
		g.add(seq, rec.ReceivedAt, end-good)
		good = end
		return nil
	})
	if errors.Is(err, errCorrupt) || errors.Is(err, io.ErrUnexpectedEOF) {
		s.log.Warn("quarantine segment has a torn or corrupt tail: cut off", "file", path, "kept_bytes", good)
		if terr := os.Truncate(path, good); terr != nil {
			return terr
		}
		err = nil
	}
	return err
}

// scanFile calls fn for each record of the file at path, in order, with
// the offset just past it; limit < 0 reads the whole file, else its first
// limit bytes. A missing file has no records.
func scanFile(path string, limit int64, fn func(seq uint64, rec *Record, end int64) error) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if limit >= 0 {
		size = min(size, limit)
	}
	br := bufio.NewReaderSize(io.LimitReader(f, size), 64<<10)
	var off int64
	var h [frameHeader]byte
	for {
		if _, err := io.ReadFull(br, h[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		n, err := frameLen(h[:])
		if err != nil {
			return err
		}
		if off+int64(frameHeader+n) > size {
			return io.ErrUnexpectedEOF // a torn last record (never allocate what the file cannot hold)
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(br, payload); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		seq, rec, err := decodePayload(h[:], payload)
		if err != nil {
			return err
		}
		off += int64(frameHeader + n)
		if err := fn(seq, rec, off); err != nil {
			return err
		}
	}
}

func (s *store) total() (n int, size int64) {
	for _, g := range s.segs {
		n += g.count
		size += g.size
	}
	return
}

// enforce drops the oldest segments until room more bytes fit within
// MaxSize. Caller holds mu.
func (s *store) enforce(room int64) (dropped int) {
	_, size := s.total()
	for len(s.segs) > 0 && size+room > s.set.MaxSize {
		g := s.segs[0]
		if len(s.segs) == 1 && s.active != nil {
			s.active.Close()
			s.active = nil
		}
		if err := os.Remove(g.path(s.dir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Error("cannot drop the oldest quarantine segment", "err", err)
			return dropped
		}
		size -= g.size
		dropped += g.count
		for seq := range s.releasing {
			if g.first <= seq && seq <= g.last {
				dropped--
				delete(s.releasing, seq)
				if s.releaseDropped != nil {
					s.releaseDropped[seq] = true
				}
			}
		}
		s.segs = s.segs[1:]
	}
	if dropped > 0 {
		s.dropped.Add(uint64(dropped))
	}
	if dropped > 0 {
		s.log.Warn("quarantine full: oldest callbacks dropped", "dropped", dropped, "max_size", s.set.MaxSize)
	}
	return dropped
}

// add appends rec; false when it is larger than the whole bound or cannot
// be written.
func (s *store) add(rec *Record) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", false
	}
	seq := s.m.nextSeq()
	buf := encode(seq, rec)
	n := int64(len(buf))
	if n > s.set.MaxSize {
		s.log.Warn("callback not quarantined: larger than the quarantine's max_size", "bytes", n, "max_size", s.set.MaxSize)
		return "", false
	}
	if s.active != nil {
		if g := s.segs[len(s.segs)-1]; g.size+n > segmentSize(s.set.MaxSize) {
			s.active.Close()
			s.active = nil
		}
	}
	s.enforce(n)
	if s.active == nil {
		g := &segment{first: seq}
		f, err := os.OpenFile(g.path(s.dir), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
		if err != nil {
			s.log.Error("callback not quarantined: cannot create a segment", "err", err)
			return "", false
		}
		s.active = f
		s.segs = append(s.segs, g)
	}
	g := s.segs[len(s.segs)-1]
	if _, err := s.active.Write(buf); err != nil {
		s.log.Error("callback not quarantined: write failed", "err", err)
		s.active.Truncate(g.size)
		return "", false
	}
	g.add(seq, rec.ReceivedAt, n)
	s.dirty = true
	return FormatID(seq), true
}

// sync flushes appended records to disk.
func (s *store) sync() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active != nil && s.dirty {
		if err := s.active.Sync(); err != nil {
			s.log.Error("quarantine sync failed", "err", err)
		}
	}
	s.dirty = false
}

func (s *store) close() {
	s.sync()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active != nil {
		s.active.Close()
		s.active = nil
	}
	s.closed = true
}

// snapshot returns copies of the segments' facts, oldest first.
func (s *store) snapshot() []segment {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]segment, len(s.segs))
	for i, g := range s.segs {
		out[i] = *g
	}
	return out
}

// each calls fn for every record of the store, oldest first, that is not
// older than keep. Caller holds opMu.
func (s *store) each(fn func(g segment, rec *Record) error) error {
	cutoff := s.m.now().Add(-s.settings().Keep)
	for _, g := range s.snapshot() {
		err := scanFile(g.path(s.dir), g.size, func(seq uint64, rec *Record, _ int64) error {
			if rec.ReceivedAt.Before(cutoff) {
				return nil
			}
			rec.Channel = s.name
			return fn(g, rec)
		})
		if err != nil {
			return fmt.Errorf("quarantine %s: %w", s.name, err)
		}
	}
	return nil
}

func (s *store) settings() Settings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set
}

// rewrite removes the records drop selects from the segment that starts
// at first: the kept records go to a new file, synced and renamed over the
// old one. It returns how many records it removed. Caller holds opMu.
//
// settled, when not nil, runs under mu once the segment is rewritten (or
// found gone), so nothing sees the records both removed and pending.
func (s *store) rewrite(first uint64, drop func(seq uint64, rec *Record) bool, settled func()) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if settled != nil {
		defer settled()
	}
	i := slices.IndexFunc(s.segs, func(g *segment) bool { return g.first == first })
	if i < 0 {
		return 0, nil // dropped meanwhile by the size bound
	}
	g := s.segs[i]
	path := g.path(s.dir)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp)
	ng := &segment{first: g.first}
	removed := 0
	bw := bufio.NewWriterSize(f, 64<<10)
	err = scanFile(path, g.size, func(seq uint64, rec *Record, _ int64) error {
		if drop(seq, rec) {
			removed++
			return nil
		}
		buf := encode(seq, rec)
		ng.add(seq, rec.ReceivedAt, int64(len(buf)))
		_, err := bw.Write(buf)
		return err
	})
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	if removed == 0 {
		return 0, nil
	}
	isActive := s.active != nil && i == len(s.segs)-1
	if isActive {
		s.active.Close()
		s.active = nil
	}
	if ng.count == 0 {
		if err := os.Remove(path); err != nil {
			return 0, err
		}
		s.segs = slices.Delete(s.segs, i, i+1)
	} else {
		if err := os.Rename(tmp, path); err != nil {
			return 0, err
		}
		s.segs[i] = ng
		if isActive {
			if s.active, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
				s.active = nil
				s.log.Error("cannot reopen the quarantine segment for appending: the next callback starts a new one", "err", err)
			}
		}
	}
	syncDir(s.dir)
	return removed, nil
}

// purge removes every record.
func (s *store) purge() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active != nil {
		s.active.Close()
		s.active = nil
	}
	n, _ := s.total()
	for _, g := range s.segs {
		if err := os.Remove(g.path(s.dir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Error("cannot remove a quarantine segment", "err", err)
		}
	}
	s.segs = nil
	syncDir(s.dir)
	return n
}

// expire drops records older than keep: whole segments when their newest
// record is, else by rewriting the segment. Caller holds opMu.
func (s *store) expire(now time.Time) int {
	cutoff := now.Add(-s.settings().Keep)
	n := 0
	for _, g := range s.snapshot() {
		if !g.oldest.Before(cutoff) {
			continue
		}
		removed, err := s.rewrite(g.first, func(_ uint64, rec *Record) bool { return rec.ReceivedAt.Before(cutoff) }, nil)
		if err != nil {
			s.log.Error("cannot drop expired quarantined callbacks", "err", err)
			continue
		}
		n += removed
	}
	return n
}

// segmentOf returns the segment whose range holds seq.
func (s *store) segmentOf(seq uint64) (segment, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.segs {
		if g.first <= seq && seq <= g.last {
			return *g, true
		}
	}
	return segment{}, false
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
