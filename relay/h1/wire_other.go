//go:build !unix

package h1

import "errors"

// rawReads: wire reads through the net.Conn only (see wire).
const rawReads = false

func rawRead(fd uintptr, p []byte) (int, bool, error) {
	return 0, false, errors.New("h1: no raw reads on this system")
}
