//go:build race

package outbound

// raceEnabled reports a -race build, where sync.Pool drops a share of the
// buffers put back (crypto/tls, net/http and bufio pools), so TotalAlloc grows
// with the bytes moved even though nothing is held.
const raceEnabled = true
