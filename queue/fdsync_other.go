//go:build !linux

package queue

import "os"

// fdsyncer is Linux's AIO fdatasync (fdsync_linux.go); elsewhere the journal keeps a nil one,
// whose fdatasync is the plain system call.
type fdsyncer struct{}

// newFdsyncer: no AIO here, and nothing to report.
func newFdsyncer() (*fdsyncer, error) { return nil, nil }

// fdatasync is File.Sync here: fsync, or F_FULLFSYNC on macOS.
func (s *fdsyncer) fdatasync(f *os.File) error { return f.Sync() }

func (s *fdsyncer) close() {}
