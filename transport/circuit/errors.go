package circuit

import (
	"errors"
	"strconv"
	"time"

	"github.com/outboundhttp/outbound/internal/refusal"
)

// ErrOpen is matched (errors.Is) by every error with which the Transport
// refuses to send a request: the breaker of the upstream is open, or it is
// half-open and its probes are already in flight.
var ErrOpen = errors.New("circuit: breaker open")

// OpenError is the error returned when a request is refused by the breaker of
// its upstream. The request was not sent and its body was closed. It matches
// ErrOpen. Callers that fall back (a cached answer, a degraded page) branch on
// it; RetryIn tells when the upstream will next be tried.
type OpenError struct {
	// Key is the upstream key whose breaker refused the request.
	Key string
	// State is Open, or HalfOpen when the probes allowed after the break
	// duration are still in flight.
	State State
	// RetryIn is the time until the breaker lets the next probe through.
	// It is 0 in the half-open state: a probe is in flight, and its outcome
	// (not a clock) decides when requests flow again.
	RetryIn time.Duration

	probe <-chan struct{} // closed when the next probe reports; see NextProbe
}

// Error names the upstream key and when the next probe may go.
func (e *OpenError) Error() string {
	if e.State == HalfOpen {
		return "circuit: breaker half-open for " + e.Key + ": probe in flight"
	}
	return "circuit: breaker open for " + e.Key + ": next probe in " +
		strconv.FormatInt(e.RetryIn.Milliseconds(), 10) + "ms"
}

// Unwrap returns ErrOpen, so errors.Is(err, ErrOpen) holds.
func (e *OpenError) Unwrap() error { return ErrOpen }

// LocalRefusal reports true: the request never left this process. The retry
// package never retries such an error, so an open breaker does not become a
// retry loop against itself.
func (e *OpenError) LocalRefusal() bool { return true }

// NextProbe returns how long until the breaker lets its next probe through
// (while open, just over RetryIn: the break is over once RetryIn has
// strictly passed; 0 when half-open, a probe being in flight) and a channel
// closed as soon as that probe has reported its outcome, whatever it was: the
// breaker has then closed, opened again, or freed the probe's slot. The
// channel is nil for an OpenError the Transport did not make.
// retry.WithWaitForBreaker waits on it, so that one probe releases every
// waiting call.
func (e *OpenError) NextProbe() (in time.Duration, reported <-chan struct{}) {
	if e.State == Open {
		return max(e.RetryIn, 0) + time.Nanosecond, e.probe
	}
	return 0, e.probe
}

var (
	_ refusal.Local = (*OpenError)(nil)
	_ refusal.Probe = (*OpenError)(nil)
)
