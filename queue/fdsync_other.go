//go:build !linux

package queue

import (
	"errors"
	"os"
)

// fdsyncer is Linux's AIO fdatasync (fdsync_linux.go); elsewhere the journal syncs itself.
type fdsyncer struct{}

func newFdsyncer() (*fdsyncer, error) { return nil, errors.New("AIO fdatasync is Linux's") }

func (s *fdsyncer) fdatasync(*os.File) error { panic("queue: no AIO fdatasync here") }

func (s *fdsyncer) close() {}
