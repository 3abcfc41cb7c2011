//go:build !unix

package queue

import "io/fs"

// diskUsage is the file's apparent size where the allocated size is not available.
func diskUsage(fi fs.FileInfo) int64 { return fi.Size() }
