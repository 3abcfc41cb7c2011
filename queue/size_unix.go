//go:build unix

package queue

import (
	"io/fs"
	"syscall"
)

// diskUsage is the space a file takes on disk: Badger preallocates its memory-mapped files
// sparsely, so the apparent size would overstate it.
func diskUsage(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}
