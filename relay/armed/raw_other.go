//go:build !unix

package armed

import "errors"

// rawReads: Reader reads through the net.Conn only.
const rawReads = false

func rawRead(fd uintptr, p []byte) (int, bool, error) {
	return 0, false, errors.New("armed: no raw reads on this system")
}
