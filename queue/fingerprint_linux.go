package queue

import (
	"io/fs"
	"syscall"
)

// fingerprintOf returns a file's size, modification and change times, inode and device.
func fingerprintOf(fi fs.FileInfo) (fingerprint, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fingerprint{}, false
	}
	return fingerprint{
		size:  fi.Size(),
		mtime: st.Mtim.Nano(),
		ctime: st.Ctim.Nano(),
		ino:   uint64(st.Ino),
		dev:   uint64(st.Dev),
	}, true
}
