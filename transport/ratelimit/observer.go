package ratelimit

import (
	"context"
	"time"
)

// Observer receives what the Transport does, for metrics (the standard stack
// of the root package records Concurrency in the tracing package's gauges;
// waits and refusals reach the tracing layers as call events). Every field is
// optional; a nil field is not called. The functions are called on the request
// path, concurrently, and must be fast and safe for concurrent use.
//
// Observer is a struct of functions, like net/http/httptrace.ClientTrace, so
// that fields can be added later without breaking implementations.
type Observer struct {
	// Wait is called when a request waited d for reason before it was sent
	// or gave up (its context ended during the wait).
	Wait func(ctx context.Context, key string, reason Reason, d time.Duration)
	// Reject is called when a request was refused with a *LimitError.
	Reject func(ctx context.Context, key string, reason Reason)
	// InFlight is called with +1 when a request is admitted and -1 when it
	// is done: the next RoundTripper failed, or the caller closed the
	// response body or read it to EOF.
	InFlight func(ctx context.Context, key string, delta int)
	// Pushback is called when a response paused key for d: a 429 or 503
	// with Retry-After or a reset field, or any response whose RateLimit
	// field says a quota is spent (r=0).
	Pushback func(ctx context.Context, key string, d time.Duration)
	// Fallback is called when a shared Limiter could not reach its shared
	// state and decided locally (Result.Fallback); err is the cause.
	Fallback func(ctx context.Context, key string, err error)
	// Concurrency is called each time the adaptive concurrency limit of key
	// is recomputed (at most once per DefaultAdaptiveWindow, while requests
	// flow), with its new state.
	Concurrency func(ctx context.Context, key string, s ConcurrencyStats)
}
