//go:build !linux

package queue

import (
	"os"

	"golang.org/x/sys/unix"
)

// fdsyncer is Linux's AIO fdatasync (fdsync_linux.go); elsewhere the journal keeps a nil one,
// whose fdatasync is the plain system call.
type fdsyncer struct{}

// newFdsyncer: no AIO here, and nothing to report.
func newFdsyncer() (*fdsyncer, error) { return nil, nil }

func (s *fdsyncer) fdatasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }

func (s *fdsyncer) close() {}
