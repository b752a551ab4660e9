package refusal

import (
	"errors"
	"time"
)

// Probe is implemented by the refusals of a circuit breaker that will let a
// probe through later: circuit.OpenError. The retry layer reads it, through
// AsProbe, to wait for that probe (retry.WithWaitForBreaker) instead of
// failing the call at once; the concern packages never import each other, so
// the protocol is declared here.
//
// NextProbe returns in, the time until the breaker lets its next probe
// through (0 when a probe is already in flight), and reported, a channel
// closed when that probe has reported its outcome, whatever it was. A nil
// channel means there is nothing to wait for.
type Probe interface {
	NextProbe() (in time.Duration, reported <-chan struct{})
}

// AsProbe returns the Probe in err's chain, if any. Callers check err != nil
// first: the errors.As target is allocated only here.
func AsProbe(err error) (Probe, bool) {
	if err == nil {
		return nil, false
	}
	var p Probe
	if !errors.As(err, &p) {
		return nil, false
	}
	return p, true
}
