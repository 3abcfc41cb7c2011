//go:build !linux

package queue

import "os"

// allocate gives f size bytes of allocated blocks; without fallocate, by
// writing zeros.
func allocate(f *os.File, size int64) error {
	zero := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(zero)) {
		n := min(int64(len(zero)), size-off)
		if _, err := f.WriteAt(zero[:n], off); err != nil {
			return err
		}
	}
	return nil
}
