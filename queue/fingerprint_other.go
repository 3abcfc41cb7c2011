//go:build !linux

package queue

import "io/fs"

// fingerprintOf is not available here: the start-up check reads every file.
func fingerprintOf(fs.FileInfo) (fingerprint, bool) { return fingerprint{}, false }
