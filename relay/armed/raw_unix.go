//go:build unix

package armed

import "syscall"

// rawReads: Reader reads the descriptor itself.
const rawReads = true

// rawRead reads fd once; again reports that nothing was there yet.
func rawRead(fd uintptr, p []byte) (n int, again bool, err error) {
	for {
		n, err = syscall.Read(int(fd), p)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, true, nil
		case nil:
			return n, false, nil
		}
		return 0, false, err
	}
}
