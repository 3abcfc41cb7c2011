//go:build !race

package outbound

// raceEnabled reports a -race build; see race_test.go.
const raceEnabled = false
