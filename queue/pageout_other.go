//go:build !linux

package queue

// pageOutSealedLogs is a no-op where MADV_PAGEOUT does not exist.
func (q *Queue) pageOutSealedLogs() {}

// pageOutTables is a no-op where MADV_PAGEOUT does not exist.
func (q *Queue) pageOutTables() {}
