package ratelimit

import (
	"errors"
	"time"

	"github.com/outboundhttp/outbound/internal/refusal"
)

// ErrLimited is matched (errors.Is) by every error with which the Transport
// refuses to send a request: a rate wait that would pass the deadline, a full
// concurrency queue, no concurrency slot within the queue timeout, a server
// pushback pause longer than the deadline allows, or a shared limiter that
// cannot decide and fails closed. Use errors.As with *LimitError for details.
var ErrLimited = errors.New("ratelimit: limited")

// Reason names the limit that made a request wait or refused it. The values
// are low-cardinality and used as-is in telemetry.
type Reason string

// The limits of a Transport.
const (
	// ReasonRate: the token bucket (WithRate, WithLimiter) or the shared
	// limiter (WithSharedLimiter) had no token in time.
	ReasonRate Reason = "rate"
	// ReasonConcurrency: every concurrency slot stayed busy for the whole
	// queue timeout (WithQueueTimeout).
	ReasonConcurrency Reason = "concurrency"
	// ReasonQueue: every concurrency slot was busy and the wait queue was
	// full (WithQueue), so the request was refused without waiting.
	ReasonQueue Reason = "queue"
	// ReasonPushback: the upstream asked for quiet with a 429 or 503 carrying
	// Retry-After or RateLimit-Reset, and the pause outlasts the deadline.
	ReasonPushback Reason = "pushback"
)

// LimitError is the error of a request the Transport refused to send. The
// request was not sent and its body was closed. It matches ErrLimited, and
// its LocalRefusal method tells the retry package not to retry it: retrying
// a refusal only adds load to a limit that is already saturated.
type LimitError struct {
	// Key is the upstream key the limit belongs to ("https://api.example.com:443").
	Key string
	// Reason names the limit that refused the request.
	Reason Reason
	// RetryAfter is the suggested delay before trying again: the rate wait
	// or the rest of the server pushback; 0 when unknown (concurrency).
	RetryAfter time.Duration
	// Err is the underlying cause, if any: the shared limiter's error when
	// it fails closed. Unwrap returns it.
	Err error

	detail string
}

// Error returns a message naming the limit and the key, such as
// "ratelimit: concurrency limit for https://api.example.com:443: queue full".
func (e *LimitError) Error() string {
	var what string
	switch e.Reason {
	case ReasonConcurrency, ReasonQueue:
		what = "concurrency limit"
	case ReasonPushback:
		what = "server pushback"
	default:
		what = string(e.Reason) + " limit"
	}
	msg := "ratelimit: " + what + " for " + e.Key
	switch {
	case e.detail != "":
		msg += ": " + e.detail
	case e.Err != nil:
		msg += ": " + e.Err.Error()
	}
	if e.detail != "" && e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is reports whether target is ErrLimited.
func (e *LimitError) Is(target error) bool { return target == ErrLimited }

// Unwrap returns the underlying cause, or nil.
func (e *LimitError) Unwrap() error { return e.Err }

// LocalRefusal reports true: the request was refused by this process, not by
// the upstream, so retrying it at once cannot help.
func (e *LimitError) LocalRefusal() bool { return true }

var _ refusal.Local = (*LimitError)(nil)
