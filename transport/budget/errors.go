package budget

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/outboundhttp/outbound/internal/refusal"
)

// ErrExhausted is matched (errors.Is) by every error that says the time budget
// of a call ran out: a request refused because too little time was left, and
// an attempt cut short by the budget's deadline. Such errors also match
// context.DeadlineExceeded. A canceled caller context gives context.Canceled
// instead, and a deadline the caller set itself plain context.DeadlineExceeded,
// so callers can tell "our budget ran out" from "the caller gave up".
var ErrExhausted = errors.New("budget: time budget exhausted")

// ExhaustedError is the error of a call whose time budget ran out. It matches
// ErrExhausted and context.DeadlineExceeded, and unwraps to Err.
type ExhaustedError struct {
	// Budget is the budget that ran out: the Transport's total, or the value
	// a Handler accepted from the inbound header.
	Budget time.Duration
	// Refused is true when the request was not sent because less than the
	// minimum time was left (WithMinRemaining); false when the deadline
	// passed while the request was in flight.
	Refused bool
	// Remaining is the time that was left when the request was refused.
	Remaining time.Duration
	// Err is what the next RoundTripper returned when the deadline passed
	// during the attempt, if anything.
	Err error

	// cause marks the value a Transport or Handler gives its context as the
	// deadline's cause (context.Cause returns it), as opposed to the verdict
	// RoundTrip returns. An inner layer may hand the cause back as its error,
	// as net/http does; it is then turned into a verdict.
	cause bool
}

// Error describes the exhausted budget on one line.
func (e *ExhaustedError) Error() string {
	switch {
	case e.Refused:
		return fmt.Sprintf("budget: %v budget exhausted: %v left, request not sent", e.Budget, e.Remaining.Round(time.Microsecond))
	case e.Err != nil:
		base := fmt.Sprintf("budget: %v budget exhausted", e.Budget)
		inner := e.Err.Error()
		// Layers below often return the deadline's cause (this same text)
		// wrapped in their own words: "retry: 1 attempt: budget: 300ms budget
		// exhausted". Say it once: "budget: 300ms budget exhausted (retry: 1
		// attempt)".
		if trimmed, ok := strings.CutSuffix(inner, ": "+base); ok {
			return base + " (" + trimmed + ")"
		}
		return base + ": " + inner
	}
	return fmt.Sprintf("budget: %v budget exhausted", e.Budget)
}

// Is reports whether target is ErrExhausted or context.DeadlineExceeded.
func (e *ExhaustedError) Is(target error) bool {
	return target == ErrExhausted || target == context.DeadlineExceeded
}

// Unwrap returns Err.
func (e *ExhaustedError) Unwrap() error { return e.Err }

// LocalRefusal reports whether the request was refused before it was sent.
// Retry layers never retry such an error; an attempt cut short by the
// deadline is not a local refusal (it was sent), though retrying it is
// pointless too, as the context is done.
func (e *ExhaustedError) LocalRefusal() bool { return e.Refused }

var _ refusal.Local = (*ExhaustedError)(nil)

// Timeout reports true, as net.Error does for deadlines, so code that checks
// for timeouts classifies an exhausted budget as one.
func (e *ExhaustedError) Timeout() bool { return true }
