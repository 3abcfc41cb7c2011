//go:build !linux

package queue

import "os"

// fdsyncer is Linux's AIO fdatasync (fdsync_linux.go); elsewhere the journal syncs itself.
type fdsyncer struct{}

func newFdsyncer() *fdsyncer { return nil }

func (s *fdsyncer) fdatasync(*os.File) error { panic("queue: no AIO fdatasync here") }

func (s *fdsyncer) close() {}
