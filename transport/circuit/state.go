package circuit

import (
	"strconv"

	"github.com/sony/gobreaker/v2"
)

// State is the state of the breaker of one upstream key.
type State uint8

// The states of a breaker. The zero value is Closed: an upstream never seen
// before is assumed healthy.
const (
	// Closed: requests are sent and their outcomes counted.
	Closed State = iota
	// HalfOpen: the break duration has passed; a limited number of probes
	// are sent and everything else is refused until they report.
	HalfOpen
	// Open: requests are refused without being sent until the break
	// duration has passed.
	Open
)

// String returns "closed", "half-open" or "open", the values used as the
// state attribute in telemetry.
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// fromGobreaker maps gobreaker's state onto ours, so gobreaker's types never
// appear in this package's API and could be replaced without breaking callers.
func fromGobreaker(s gobreaker.State) State {
	switch s {
	case gobreaker.StateHalfOpen:
		return HalfOpen
	case gobreaker.StateOpen:
		return Open
	}
	return Closed
}
