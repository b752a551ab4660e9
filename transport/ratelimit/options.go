package ratelimit

import (
	"fmt"
	"net/http"
	"time"

	"golang.org/x/time/rate"
)

// Defaults. DefaultQueueTimeout is the reference article's 2 s pool timeout:
// how long a request may wait for a concurrency slot. DefaultQueue bounds the
// number of waiters only so that memory stays bounded; it is Envoy's
// max_pending_requests (1024), large enough that the wait, not the count, is
// what refuses a burst.
const (
	DefaultMaxKeys      = 1024
	DefaultQueue        = 1024
	DefaultQueueTimeout = 2 * time.Second
	DefaultMaxPushback  = 30 * time.Second
)

// Option configures a Transport.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	key     func(*http.Request) string
	maxKeys int

	// At most one of these three is set: the last rate option wins.
	perSecond float64 // > 0: a token bucket per key
	burst     int
	global    *rate.Limiter // caller-owned, shared by all keys
	shared    Limiter

	concurrency  int             // fixed limit; 0: off
	adaptive     *adaptiveConfig // adaptive limit; nil: off (replaces concurrency)
	queue        int
	queueTimeout time.Duration
	maxPushback  time.Duration

	obs Observer
}

func newConfig(opts []Option) *config {
	c := &config{
		maxKeys:      DefaultMaxKeys,
		queue:        DefaultQueue,
		queueTimeout: DefaultQueueTimeout,
		maxPushback:  DefaultMaxPushback,
	}
	for _, o := range opts {
		if o != nil {
			o.apply(c)
		}
	}
	return c
}

// WithKey sets the function that maps a request to the key its limits belong
// to. The default is the upstream "scheme://host:port" (ports made explicit),
// so every host has its own limits. A nil f is ignored. Return a constant to
// put every request under one limit.
func WithKey(f func(*http.Request) string) Option {
	return optionFunc(func(c *config) {
		if f != nil {
			c.key = f
		}
	})
}

// WithMaxKeys bounds the number of keys whose state (token bucket,
// concurrency slots, pushback pause) is kept; the least recently used key is
// dropped beyond it, so a flood of distinct hosts cannot grow memory without
// bound. A dropped key starts afresh when it is used again. Default 1024.
// It panics if n < 1.
func WithMaxKeys(n int) Option {
	if n < 1 {
		panic(fmt.Sprintf("ratelimit: WithMaxKeys(%d): n must be at least 1", n))
	}
	return optionFunc(func(c *config) { c.maxKeys = n })
}

// WithRate limits each key to perSecond requests per second on average, with
// bursts of up to burst requests, with a token bucket (golang.org/x/time/rate)
// per key. Off by default. WithRate, WithLimiter and WithSharedLimiter replace
// one another; the last one given wins. It panics if perSecond is not positive
// or burst < 1.
func WithRate(perSecond float64, burst int) Option {
	if !(perSecond > 0) {
		panic(fmt.Sprintf("ratelimit: WithRate(%v, %d): perSecond must be positive", perSecond, burst))
	}
	if burst < 1 {
		panic(fmt.Sprintf("ratelimit: WithRate(%v, %d): burst must be at least 1", perSecond, burst))
	}
	return optionFunc(func(c *config) {
		c.perSecond, c.burst, c.global, c.shared = perSecond, burst, nil, nil
	})
}

// WithTokenBucket uses l, a caller-owned token bucket, for every request of
// the Transport whatever its key: one limit across all upstreams, which the
// caller may share with other code or change with SetLimit. A nil l is
// ignored. See WithRate for how rate options combine.
func WithTokenBucket(l *rate.Limiter) Option {
	return optionFunc(func(c *config) {
		if l != nil {
			c.perSecond, c.burst, c.global, c.shared = 0, 0, l, nil
		}
	})
}

// WithLimiter is the former name of WithTokenBucket.
//
// Deprecated: use WithTokenBucket; this package's Limiter is the interface
// WithSharedLimiter takes, not a *rate.Limiter.
func WithLimiter(l *rate.Limiter) Option { return WithTokenBucket(l) }

// WithSharedLimiter uses l, asked with the request's key, instead of a local
// token bucket: for a quota that many replicas share (redisrate.New). A nil l
// is ignored. See WithRate for how rate options combine.
func WithSharedLimiter(l Limiter) Option {
	return optionFunc(func(c *config) {
		if l != nil {
			c.perSecond, c.burst, c.global, c.shared = 0, 0, nil, l
		}
	})
}

// WithConcurrency allows at most max requests per key in flight at once. A
// request is in flight from the moment it is admitted until the caller closes
// the response body or reads it to EOF (or the next RoundTripper fails), so a
// caller still reading a large body keeps its slot. Off by default (0).
// Requests beyond max wait in a FIFO queue (WithQueue, WithQueueTimeout).
// WithConcurrency and WithAdaptiveConcurrency replace one another; the last
// one given wins. It panics if max < 0.
func WithConcurrency(max int) Option {
	if max < 0 {
		panic(fmt.Sprintf("ratelimit: WithConcurrency(%d): max must not be negative", max))
	}
	return optionFunc(func(c *config) { c.concurrency, c.adaptive = max, nil })
}

// WithAdaptiveConcurrency limits the requests per key in flight at once, as
// WithConcurrency does, with a limit that follows the upstream between min
// and max: it starts at DefaultInitialConcurrency (within the bounds), grows
// while the upstream's latency stays near its baseline, falls when the
// latency inflates (a gradient, as Envoy's adaptive_concurrency filter and
// Netflix's Gradient2 compute it) and falls by the share of overload signals
// (429, 503, attempt timeouts), by at most half per window. The baseline is
// measured afresh every 30 s with the limit halved for one window, so it
// cannot drift up through a long incident. docs/overload.md has the
// algorithm. The standard stack uses it with min 4 and max 100.
// WithConcurrency and WithAdaptiveConcurrency replace one another; the last
// one given wins. It panics if min < 1 or max < min.
func WithAdaptiveConcurrency(min, max int) Option {
	if min < 1 {
		panic(fmt.Sprintf("ratelimit: WithAdaptiveConcurrency(%d, %d): min must be at least 1", min, max))
	}
	if max < min {
		panic(fmt.Sprintf("ratelimit: WithAdaptiveConcurrency(%d, %d): max must not be less than min", min, max))
	}
	return optionFunc(func(c *config) {
		c.concurrency = 0
		c.adaptive = &adaptiveConfig{
			min: min, max: max, initial: DefaultInitialConcurrency,
			tolerance: DefaultLatencyTolerance, window: DefaultAdaptiveWindow,
			probeInterval: DefaultBaselineProbeInterval,
		}
	})
}

// WithQueue bounds how many requests per key may wait for a concurrency slot;
// a request that finds the queue full is refused at once (ReasonQueue). 0
// means no waiting: refuse as soon as all slots are busy. The default,
// DefaultQueue (1024), is there to bound memory: what refuses a request under
// load is the queue timeout, so a burst a fast upstream can serve within it is
// served rather than refused. It panics if n < 0.
func WithQueue(n int) Option {
	if n < 0 {
		panic(fmt.Sprintf("ratelimit: WithQueue(%d): n must not be negative", n))
	}
	return optionFunc(func(c *config) { c.queue = n })
}

// WithQueueTimeout bounds how long a request waits in the queue for a
// concurrency slot before it is refused (ReasonConcurrency); the request's
// own deadline cuts the wait shorter. Default 2 s, the reference article's
// pool timeout. It panics if d is not positive.
func WithQueueTimeout(d time.Duration) Option {
	if d <= 0 {
		panic(fmt.Sprintf("ratelimit: WithQueueTimeout(%v): d must be positive", d))
	}
	return optionFunc(func(c *config) { c.queueTimeout = d })
}

// WithMaxPushback caps how long a 429 or 503 response with Retry-After
// (RFC 9110 §10.2.3) or RateLimit-Reset, or a response whose RateLimit field
// says a quota is spent, may pause its key; a server asking
// for an hour of quiet gets d. Default 30 s. 0 turns server pushback off. It
// panics if d < 0.
func WithMaxPushback(d time.Duration) Option {
	if d < 0 {
		panic(fmt.Sprintf("ratelimit: WithMaxPushback(%v): d must not be negative", d))
	}
	return optionFunc(func(c *config) { c.maxPushback = d })
}

// WithObserver sets the functions that receive waits, rejections, in-flight
// changes, pushback pauses and shared-limiter fallbacks, for metrics.
func WithObserver(o Observer) Option {
	return optionFunc(func(c *config) { c.obs = o })
}
