package hedge

import (
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/outboundhttp/outbound/internal/idempotent"
	"github.com/outboundhttp/outbound/internal/retrybudget"
)

// Option configures a Transport. Options are applied in order after the
// defaults; invalid arguments panic when the option is made, never on the
// request path.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// Defaults.
const (
	// DefaultQuantile is the latency quantile of the upstream after which a
	// hedge is sent: the slowest 5 % of first attempts get one, so hedging
	// costs about 5 % more requests (Dean and Barroso, "The Tail at Scale",
	// hedge after the 95th percentile).
	DefaultQuantile = 0.95
	// DefaultMinDelay is the floor of the quantile delay when WithDelay does
	// not set one: an attempt slower than a millisecond more often waits on
	// the client itself (a GC pause, a busy scheduler) than on the upstream,
	// and a hedge sent from the same client waits too.
	DefaultMinDelay = time.Millisecond
	// DefaultMaxHedges is how many hedges one attempt may get: one, as in
	// gRPC's and .NET's examples; a second rarely helps once the first has
	// cut the tail.
	DefaultMaxHedges = 1
	// DefaultMinSamples is how many latencies of an upstream must be known
	// before its quantile is trusted: until then nothing is hedged. Ten are
	// enough because the delay is capped at MaxDelayMedians medians, and the
	// median of ten latencies is already a steady estimate, where their p95
	// is only their largest; with 20, the calls of the latency drill's first
	// second went unhedged, and a spike among them was its p99 in 3 seeds of
	// 5 (2 s; with 10: at most 176 ms).
	DefaultMinSamples = 10
	// DefaultLatencyWindow is how long a latency counts: latencies are kept in
	// two sketches, the current one and the one before, swapped every
	// window, so the quantile follows the last one to two windows.
	DefaultLatencyWindow = 30 * time.Second
	// MaxDelayMedians caps the quantile delay at this many times the
	// upstream's median latency, so that the delay cannot land in a
	// pathological tail: when more than 1 - q of the attempts are spikes or
	// hangs (the latency drill: 7 %), the quantile is one of them and a hedge
	// sent after it cuts nothing. 4 leaves every healthy shape alone — a
	// lognormal up to σ ≈ 0.84, uniform latencies, any mix whose slow
	// part is under 1 - q all have their p95 below 4 medians — and for
	// memoryless (exponential) service times, whose p95 is 4.3 medians, hedges
	// at most 2⁻⁴ = 6.25 % of the attempts, under the 10 % that issue 16
	// allows a healthy upstream. (Dean and Barroso hedge after the p95;
	// bhope/hedge after the p90, which is 3.3 medians for an exponential.)
	MaxDelayMedians = 4
	// DefaultMaxKeys bounds the number of upstreams whose state is kept.
	DefaultMaxKeys = 1024
)

// Defaults of the hedge layer's own budget, the same values as
// transport/retry's DefaultRetryBudget*: hedges may add 20 % of the requests
// to an upstream over 10 s, plus 3 per second. See WithBudget.
const (
	DefaultBudgetRatio        = retrybudget.DefaultRatio
	DefaultBudgetWindow       = retrybudget.DefaultWindow
	DefaultBudgetMinPerSecond = retrybudget.DefaultMinPerSecond
)

// IdempotencyKeyHeader marks a request as safe to repeat whatever its method
// (draft-ietf-httpapi-idempotency-key-header); transport/retry honours the
// same header.
const IdempotencyKeyHeader = idempotent.KeyHeader

type config struct {
	delay        time.Duration // WithDelay: the fixed delay, or the quantile's floor
	delaySet     bool
	quantile     float64 // WithQuantile
	quantileSet  bool
	maxHedges    int
	ratio        float64 // own budget
	window       time.Duration
	minPerSecond float64
	keyFunc      func(*http.Request) string // nil: upstream.Key, cached
	maxKeys      int
}

func defaultConfig() config {
	return config{
		delay:        DefaultMinDelay,
		quantile:     DefaultQuantile,
		maxHedges:    DefaultMaxHedges,
		ratio:        DefaultBudgetRatio,
		window:       DefaultBudgetWindow,
		minPerSecond: DefaultBudgetMinPerSecond,
		maxKeys:      DefaultMaxKeys,
	}
}

// fixed reports whether the delay is WithDelay's alone (no WithQuantile).
func (c *config) fixed() bool { return c.delaySet && !c.quantileSet }

// WithDelay sets the delay after which a hedge is sent. Given alone, it is
// the delay, for every upstream, from the first request on. Given with
// WithQuantile (in either order), it is the floor under the quantile. A zero
// delay sends the hedges with the first attempt. d must not be negative.
func WithDelay(d time.Duration) Option {
	if d < 0 {
		panic(fmt.Sprintf("hedge: WithDelay(%v): d must not be negative", d))
	}
	return optionFunc(func(c *config) { c.delay, c.delaySet = d, true })
}

// WithQuantile sends a hedge once an attempt has taken longer than the
// upstream's recent latency at quantile q (the default, with q = 0.95): the
// latencies to response headers of each upstream are kept in a bounded
// streaming sketch, and nothing is hedged until DefaultMinSamples of them
// are known. The delay is never below WithDelay's, or DefaultMinDelay when
// WithDelay is not given. q must be in (0, 1).
func WithQuantile(q float64) Option {
	if !(q > 0 && q < 1) {
		panic(fmt.Sprintf("hedge: WithQuantile(%v): q must be in (0, 1)", q))
	}
	return optionFunc(func(c *config) { c.quantile, c.quantileSet = q, true })
}

// WithMaxHedges sets how many hedges one attempt may get (default 1); hedge
// k is sent k delays after the first attempt if none has answered by then.
// 0 turns hedging off. n must not be negative.
func WithMaxHedges(n int) Option {
	if n < 0 {
		panic(fmt.Sprintf("hedge: WithMaxHedges(%d): n must not be negative", n))
	}
	return optionFunc(func(c *config) { c.maxHedges = n })
}

// WithBudget sets the hedge layer's own budget, used when no retry layer
// above shares its retry budget (see Transport): over a sliding window,
// hedges may add at most ratio × the hedgeable requests started in it, plus
// minPerSecond × window seconds. Defaults: DefaultBudgetRatio (0.2),
// DefaultBudgetWindow (10 s), DefaultBudgetMinPerSecond (3), the retry
// layer's. ratio and minPerSecond must not be negative, window must be
// positive; WithBudget(0, time.Second, 0) allows no hedge at all.
func WithBudget(ratio float64, window time.Duration, minPerSecond float64) Option {
	if ratio < 0 || minPerSecond < 0 || window <= 0 || math.IsNaN(ratio) || math.IsNaN(minPerSecond) || math.IsInf(ratio, 0) || math.IsInf(minPerSecond, 0) {
		panic(fmt.Sprintf("hedge: WithBudget(%v, %v, %v): need ratio >= 0, window > 0, minPerSecond >= 0",
			ratio, window, minPerSecond))
	}
	return optionFunc(func(c *config) { c.ratio, c.window, c.minPerSecond = ratio, window, minPerSecond })
}

// WithKey sets how requests are grouped into upstreams, each with its own
// latency sketch and budget. Default: "scheme://host:port". A nil f restores
// the default.
func WithKey(f func(*http.Request) string) Option {
	return optionFunc(func(c *config) { c.keyFunc = f })
}

// WithMaxKeys bounds the number of upstreams whose state is kept (default
// 1024, a few kilobytes each); the least recently used is forgotten first,
// and starts again with no latencies and a fresh budget. n must be at least 1.
func WithMaxKeys(n int) Option {
	if n < 1 {
		panic(fmt.Sprintf("hedge: WithMaxKeys(%d): n must be at least 1", n))
	}
	return optionFunc(func(c *config) { c.maxKeys = n })
}
