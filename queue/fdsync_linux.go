package queue

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fdsyncer makes the journal's fdatasyncs without a thread blocked in the system call: it
// submits each one through Linux's native AIO (io_submit, IOCB_CMD_FDSYNC, which the kernel
// runs on a worker thread of its own) and waits for its completion on an eventfd through Go's
// netpoller, the way a socket read waits.
//
// Why: a goroutine blocked in fdatasync holds its P in a system call for a millisecond, hundreds
// of times a second. With every P busy, the runtime's sysmon then takes the P away from the
// blocked thread each time (and starts or wakes another thread to run it) and keeps polling at
// its shortest interval, 20 µs. On a 2-core virtual machine whose context switches are costly,
// that polling and those hand-offs were 5–8% of the relay's CPU in pass-through (perf); the
// same sync through AIO costs a few cheap system calls and a netpoller wake-up.
//
// Durability is the same: the completion is the kernel's fdatasync's result. Where AIO is not
// available (io_setup refused: aio-max-nr reached, a seccomp filter), newFdsyncer says why (Open
// logs it) and the journal keeps a nil *fdsyncer, whose fdatasync is the plain system call.
type fdsyncer struct {
	mu  sync.Mutex // one sync in flight: the context has room for one
	ctx uintptr    // aio_context_t
	efd int
	ev  *os.File // efd, read through the netpoller
	// done counts the syncs completed through AIO (tests).
	done atomic.Uint64
}

// aioIocb is struct iocb of <linux/aio_abi.h>: 64 bytes on every architecture, its fields at
// their natural offsets. Only aio_key and aio_rw_flags swap places with the byte order, and both
// are left zero here.
type aioIocb struct {
	_      uint64 // aio_data
	_      uint32 // aio_key
	_      uint32 // aio_rw_flags
	opcode uint16
	_      int16 // aio_reqprio
	fildes uint32
	_      uint64 // aio_buf
	_      uint64 // aio_nbytes
	_      int64  // aio_offset
	_      uint64 // aio_reserved2
	flags  uint32
	resfd  uint32
}

// aioEvent is struct io_event.
type aioEvent struct {
	data, obj uint64
	res, res2 int64
}

const (
	iocbCmdFdsync = 3
	iocbFlagResfd = 1 << 0
)

// newFdsyncer returns an fdsyncer, or why this kernel or process cannot have one.
func newFdsyncer() (*fdsyncer, error) {
	s := &fdsyncer{}
	if _, _, e := unix.Syscall(unix.SYS_IO_SETUP, 1, uintptr(unsafe.Pointer(&s.ctx)), 0); e != 0 {
		return nil, fmt.Errorf("io_setup: %w", e)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Syscall(unix.SYS_IO_DESTROY, s.ctx, 0, 0)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	s.efd = efd
	s.ev = os.NewFile(uintptr(efd), "journal-aio-eventfd")
	return s, nil
}

// fdatasync makes f's data durable, as unix.Fdatasync does (and is, on a nil *fdsyncer).
func (s *fdsyncer) fdatasync(f *os.File) error {
	if s == nil {
		return unix.Fdatasync(int(f.Fd()))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cb := &aioIocb{opcode: iocbCmdFdsync, fildes: uint32(f.Fd()), flags: iocbFlagResfd, resfd: uint32(s.efd)}
	if _, _, e := unix.Syscall(unix.SYS_IO_SUBMIT, s.ctx, 1, uintptr(unsafe.Pointer(&cb))); e != 0 {
		// Not queued (EAGAIN when the kernel is short of resources): sync here instead.
		return unix.Fdatasync(int(f.Fd()))
	}
	var cnt [8]byte
	for {
		var ev aioEvent
		var zero unix.Timespec
		n, _, e := unix.Syscall6(unix.SYS_IO_GETEVENTS, s.ctx, 0, 1, uintptr(unsafe.Pointer(&ev)),
			uintptr(unsafe.Pointer(&zero)), 0)
		switch {
		case e == unix.EINTR:
			continue
		case e != 0:
			return fmt.Errorf("io_getevents: %w", e)
		case n == 1:
			if ev.res < 0 {
				return fmt.Errorf("fdatasync: %w", unix.Errno(-ev.res))
			}
			s.done.Add(1)
			return nil
		}
		// Not complete: wait for the eventfd, which the completion increments. A count left
		// from an earlier completion only makes one more turn of this loop.
		if _, err := s.ev.Read(cnt[:]); err != nil {
			return fmt.Errorf("journal sync: eventfd: %w", err)
		}
	}
}

// close releases the AIO context and the eventfd; no sync may be in flight. Nil: nothing.
func (s *fdsyncer) close() {
	if s == nil {
		return
	}
	s.ev.Close()
	unix.Syscall(unix.SYS_IO_DESTROY, s.ctx, 0, 0)
}
