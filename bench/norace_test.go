package bench

// raceEnabled is set when the tests are built with -race (race_test.go), so a
// real-time comparison can say that its figures are the race detector's.
var raceEnabled bool
