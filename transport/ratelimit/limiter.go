package ratelimit

import (
	"context"
	"time"
)

// Limiter is a rate limit that the Transport asks before each attempt, for
// limits that live outside the process (redisrate: one quota shared by many
// replicas through Redis) or follow rules of their own. Implementations must
// be safe for concurrent use.
//
// The interface is allow-or-retry-after rather than reserve-a-place because
// that is what a shared store can do atomically in one round trip (GCRA in
// redis_rate answers "allowed" or "retry after d"); the local token bucket
// (WithRate) keeps its FIFO reservations and does not go through it.
type Limiter interface {
	// Allow asks for one request to key now. When the request may go, it is
	// counted and Allow returns Result{Allowed: true}. Otherwise nothing is
	// counted and RetryAfter says when asking again may succeed; the
	// Transport waits that long if the request's deadline allows, and asks
	// again. A non-nil error means the limiter could not decide: the
	// Transport refuses the request with a *LimitError wrapping the error
	// (fail closed). A limiter that prefers to fail open decides locally and
	// reports the cause in Result.Fallback instead.
	Allow(ctx context.Context, key string) (Result, error)
}

// Result is a Limiter's answer for one request.
type Result struct {
	// Allowed reports whether the request may be sent now; it was counted.
	Allowed bool
	// RetryAfter is, when Allowed is false, the wait after which asking
	// again may succeed. Zero or negative means: refuse now, do not wait.
	RetryAfter time.Duration
	// Fallback is non-nil when the limiter could not reach its shared state
	// and decided with a local fallback instead; the Transport reports it
	// through Observer.Fallback so operators see the degraded mode.
	Fallback error
}

// LimiterFunc adapts an ordinary function to Limiter.
type LimiterFunc func(ctx context.Context, key string) (Result, error)

// Allow calls f(ctx, key).
func (f LimiterFunc) Allow(ctx context.Context, key string) (Result, error) { return f(ctx, key) }
