package circuit

import (
	"fmt"
	"math"
	"net/http"
	"time"
)

// Defaults of the trip rule. They are justified in the package documentation.
const (
	// DefaultFailureRatio is the share of failed attempts in the window at
	// which the breaker opens: 0.9, so it opens for an upstream that is down,
	// not for one that sheds part of its load (see the package documentation).
	DefaultFailureRatio = 0.9
	// DefaultMinRequests is the number of finished attempts the window must
	// hold before the ratio is trusted.
	DefaultMinRequests = 20
	// DefaultWindow is the length of the sliding window of outcomes.
	DefaultWindow = 30 * time.Second
	// DefaultBreakDuration is how long the breaker stays open before probing.
	DefaultBreakDuration = 5 * time.Second
	// DefaultHalfOpenProbes is the number of probes sent in the half-open state.
	DefaultHalfOpenProbes = 1
	// DefaultMaxKeys bounds the number of upstream keys holding a breaker.
	DefaultMaxKeys = 1024
)

// windowBuckets is how many buckets the sliding window is split into
// (gobreaker's BucketPeriod): old outcomes leave the window a tenth of it at a
// time instead of all at once, as with a fixed interval that resets.
const windowBuckets = 10

type config struct {
	ratio       float64
	minRequests uint32
	window      time.Duration
	breakFor    time.Duration
	probes      uint32
	maxKeys     int
	key         func(*http.Request) string
	isFailure   func(*http.Response, error) bool
	obs         Observer // WithObserver
}

func newConfig(opts []Option) config {
	c := config{
		ratio:       DefaultFailureRatio,
		minRequests: DefaultMinRequests,
		window:      DefaultWindow,
		breakFor:    DefaultBreakDuration,
		probes:      DefaultHalfOpenProbes,
		maxKeys:     DefaultMaxKeys,
		isFailure:   DefaultIsFailure,
	}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

// Option configures a Transport.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithFailureRatio sets the share of failed attempts in the window at or above
// which the breaker opens, once the window holds at least WithMinRequests
// finished attempts. Default 0.9. It panics unless 0 < r <= 1.
func WithFailureRatio(r float64) Option {
	if !(r > 0 && r <= 1) {
		panic(fmt.Sprintf("circuit: WithFailureRatio(%v): ratio must be in (0, 1]", r))
	}
	return optionFunc(func(c *config) { c.ratio = r })
}

// WithMinRequests sets how many finished attempts (successes plus failures;
// excluded outcomes and attempts still in flight do not count) the window must
// hold before the failure ratio can open the breaker. Default 20. It panics
// if n < 1.
func WithMinRequests(n int) Option {
	if n < 1 || n > math.MaxUint32 {
		panic(fmt.Sprintf("circuit: WithMinRequests(%d): n must be at least 1", n))
	}
	return optionFunc(func(c *config) { c.minRequests = uint32(n) })
}

// WithWindow sets the length of the sliding window over which the failure
// ratio is computed. The window moves in ten steps (rolling buckets, with
// gobreaker's geometry), so an outcome leaves it between 0.9·d and d after it was
// recorded. Default 30 s. It panics if d <= 0.
func WithWindow(d time.Duration) Option {
	if d <= 0 {
		panic(fmt.Sprintf("circuit: WithWindow(%v): window must be positive", d))
	}
	return optionFunc(func(c *config) { c.window = d })
}

// WithBreakDuration sets how long the breaker stays open, refusing every
// request, before it lets probes through. Default 5 s. It panics if d <= 0.
func WithBreakDuration(d time.Duration) Option {
	if d <= 0 {
		panic(fmt.Sprintf("circuit: WithBreakDuration(%v): duration must be positive", d))
	}
	return optionFunc(func(c *config) { c.breakFor = d })
}

// WithHalfOpenProbes sets how many requests the half-open breaker lets
// through. All of them must succeed for the breaker to close; the first
// failure opens it again for another break duration. Requests beyond n are
// refused with an *OpenError in state HalfOpen. Default 1. It panics if n < 1.
func WithHalfOpenProbes(n int) Option {
	if n < 1 || n > math.MaxUint32 {
		panic(fmt.Sprintf("circuit: WithHalfOpenProbes(%d): n must be at least 1", n))
	}
	return optionFunc(func(c *config) { c.probes = uint32(n) })
}

// WithMaxKeys bounds the number of upstream keys that hold a breaker; the
// least recently used key is forgotten beyond it (its breaker starts closed
// when the key comes back). Default 1024. Size it above the number of
// upstreams the client talks to. It panics if n < 1.
func WithMaxKeys(n int) Option {
	if n < 1 {
		panic(fmt.Sprintf("circuit: WithMaxKeys(%d): n must be at least 1", n))
	}
	return optionFunc(func(c *config) { c.maxKeys = n })
}

// WithKey sets the function that names the upstream of a request; requests
// with the same key share a breaker. Default: "scheme://host:port". Use it to
// break per host and path prefix, or to share one breaker among the hosts of
// a cluster. A nil f is ignored.
func WithKey(f func(*http.Request) string) Option {
	return optionFunc(func(c *config) {
		if f != nil {
			c.key = f
		}
	})
}

// WithFailure sets the function that says whether the outcome of an attempt
// is a failure of the upstream. It receives the response (err == nil) or the
// error (resp == nil) of the next RoundTripper; it must not read or close the
// body. It is not called for attempts that ended because the caller's context
// was canceled or passed its deadline: those count neither way. Default
// DefaultIsFailure. A nil f is ignored.
func WithFailure(f func(resp *http.Response, err error) bool) Option {
	return optionFunc(func(c *config) {
		if f != nil {
			c.isFailure = f
		}
	})
}

// DefaultIsFailure is the default failure classification: any error (the
// connection was refused or reset, a dial, TLS or response-header timeout of
// the underlying transport fired) and the statuses 500, 502, 503 and 504. A
// 429 and every other 4xx are successes: the upstream is up and answering,
// and 429 is its own flow control, handled by retry and ratelimit. 501 is a
// permanent answer, not an outage.
func DefaultIsFailure(resp *http.Response, err error) bool {
	if err != nil {
		return true
	}
	switch resp.StatusCode {
	case http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}
