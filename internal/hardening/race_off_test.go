//go:build !race

package hardening_test

// raceEnabled is true when the tests run under the race detector, which
// slows the stack down about tenfold; the load test sizes itself by it.
const raceEnabled = false
