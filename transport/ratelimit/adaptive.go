package ratelimit

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outboundhttp/outbound/internal/callctx"
)

// Parameters of the adaptive concurrency limit. docs/overload.md says where
// each value comes from.
const (
	// DefaultMinConcurrency is the floor of the adaptive limit: however bad
	// the signals, a few requests stay in flight, so the limiter keeps
	// measuring the upstream and notices when it recovers.
	DefaultMinConcurrency = 4
	// DefaultInitialConcurrency is where an adaptive limit starts for a new
	// upstream (failsafe-go's adaptivelimiter and Netflix's Gradient2 start
	// at 20 too): low enough not to flood an upstream whose capacity is
	// unknown, high enough that a healthy one is not held back while the
	// limit grows (by its square root every window, to 100 in about a second).
	DefaultInitialConcurrency = 20
	// DefaultLatencyTolerance is how far the recent latency may rise above the
	// baseline before the limit falls (Gradient2's rttTolerance).
	DefaultLatencyTolerance = 1.5
	// DefaultAdaptiveWindow is how often the limit is recomputed (Envoy's
	// adaptive_concurrency concurrency_update_interval).
	DefaultAdaptiveWindow = 100 * time.Millisecond
	// DefaultBaselineProbeInterval is how often the baseline latency is
	// measured afresh with the limit halved for one window (Envoy re-measures
	// its minRTT every 60 s by pinning the limit; BBR's ProbeRTT is the same
	// idea), so a baseline taken while the upstream queued our own requests
	// cannot stay, nor drift up through a long incident (failsafe-go #127).
	DefaultBaselineProbeInterval = 30 * time.Second
	// adaptiveMinSamples is the number of outcomes a window needs before it
	// moves the limit: fewer say too little about the upstream.
	adaptiveMinSamples = 10
	// maxDecrease bounds how far one window of overload signals cuts the
	// limit: to half (Gradient2 and Envoy bound the gradient at 0.5 too).
	maxDecrease = 0.5
)

// ConcurrencyStats is a snapshot of one upstream's concurrency limit, for
// metrics and dashboards (Transport.Concurrency, Observer.Concurrency).
type ConcurrencyStats struct {
	// Adaptive reports whether the limit follows the upstream
	// (WithAdaptiveConcurrency) or is fixed (WithConcurrency).
	Adaptive bool
	// Limit is the number of requests allowed in flight now.
	Limit int
	// InFlight is the number of requests holding a slot; Queued the number
	// waiting for one.
	InFlight, Queued int
	// Baseline is the upstream's latency without queueing, as last measured;
	// Latency the mean latency of the last window. Both are 0 until measured
	// and for a fixed limit.
	Baseline, Latency time.Duration
}

// adaptiveConfig holds the settings of WithAdaptiveConcurrency.
type adaptiveConfig struct {
	min, max, initial int
	tolerance         float64
	window            time.Duration
	probeInterval     time.Duration
}

// adaptive moves a semaphore's limit with what the upstream shows, once per
// window:
//
//   - the gradient: limit·min(1, max(0.5, tolerance·baseline/latency)) plus
//     √limit of headroom, as Netflix's Gradient2 and Envoy's
//     adaptive_concurrency do: the limit grows while the latency stays near
//     the baseline and falls as the upstream starts to queue;
//   - overload signals (429, 503, attempt timeouts) cut it by their share of
//     the window's outcomes, by at most half, as Vector's ARC cuts on
//     back-pressure: a window where most attempts are shed halves the limit,
//     a stray 503 among hundreds of successes barely moves it;
//   - it grows only while in use (at least half of it held at some point in
//     the window, Gradient2's rule), so a quiet period does not leave a high
//     limit that the next burst would flood the upstream with.
//
// Every attempt reports its outcome (done), so that path takes no lock: it
// adds its sample to atomic counters, and only the attempt that finds the
// window over takes mu (a try-lock: a second attempt finding it taken knows
// the window is being closed) to move the limit. Times are kept as
// nanoseconds since epoch, the monotonic reading of when the limiter was
// made, so they fit in atomics and still never jump with the wall clock.
type adaptive struct {
	sem   *semaphore
	cfg   *adaptiveConfig
	epoch time.Time

	// Read by every done without mu; written under mu (windowStart also
	// once by the first outcome's CompareAndSwap).
	windowStart atomic.Int64 // since epoch; 0 until the first outcome
	probeStart  atomic.Int64 // since epoch; 0 while not probing
	baselineNs  atomic.Int64 // baseline, for holdFor

	// The window's outcomes, added by every done; the window's closer
	// subtracts what it counted, so an outcome reported while it closes
	// lands in the next window instead of being lost.
	samples   atomic.Int64
	sum       atomic.Int64 // of the samples' latencies, in nanoseconds
	overloads atomic.Int64

	mu               sync.Mutex // guards the fields below and closing a window
	limit            float64
	baseline         time.Duration
	latency          time.Duration // mean of the last window
	probing          bool
	limitBeforeProbe float64
	nextProbe        time.Duration // since epoch
}

func newAdaptive(cfg *adaptiveConfig, queue int) *adaptive {
	initial := min(max(cfg.initial, cfg.min), cfg.max)
	a := &adaptive{cfg: cfg, limit: float64(initial), epoch: time.Now()}
	a.sem = newSemaphore(initial, queue)
	return a
}

// now returns the time as nanoseconds since a.epoch, plus 1 so that 0 stays
// "unset" and the difference of two readings is exact. time.Since reads
// only the monotonic clock: the attempt's start and end cost half of what
// two time.Now would.
func (a *adaptive) now() int64 { return int64(time.Since(a.epoch)) + 1 }

// outcome is what one attempt tells the adaptive limit.
type outcome uint8

const (
	// outcomeIgnored says nothing about the upstream's load: the caller
	// gave up, the connection was refused or reset.
	outcomeIgnored outcome = iota
	// outcomeLatency is a response whose latency is a sample.
	outcomeLatency
	// outcomeOverload is a 429, a 503 or an attempt timeout.
	outcomeOverload
)

// classify returns what the attempt that ended with resp or err tells.
func classify(ctx context.Context, resp *http.Response, err error) outcome {
	if err != nil {
		if isAttemptTimeout(ctx, err) {
			return outcomeOverload
		}
		return outcomeIgnored
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return outcomeOverload
	}
	return outcomeLatency
}

// isAttemptTimeout reports whether err is a timeout of this attempt (the base
// transport's connect, header or write timeout, or a per-attempt deadline set
// above with callctx.ErrAttemptTimeout), not the caller's own deadline or
// cancel, which say nothing about the upstream.
func isAttemptTimeout(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return errors.Is(context.Cause(ctx), callctx.ErrAttemptTimeout)
	}
	var t interface{ Timeout() bool }
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &t) && t.Timeout())
}

// done records the outcome o of an attempt admitted at start (a.now's
// reading) whose response headers (or error) came after rtt, and releases
// its slot. It returns the new stats when it recomputed the limit (once per
// window), for the observer.
func (a *adaptive) done(start int64, rtt time.Duration, o outcome) (ConcurrencyStats, bool) {
	// The window is timed by when attempts answered: one clock read
	// fewer on the fast path than reading it again here.
	n := start + int64(rtt)
	s := a.sem
	if o == outcomeOverload && s.limit() > a.cfg.min && a.holdFor(rtt) > 0 {
		// A shed answer comes back at once; its slot, freed at once, would
		// take the next waiter straight to the same refusal, so one slot
		// above what the upstream accepts would turn most of the queue into
		// 503s. Held for the baseline latency, it weighs what a served
		// request weighs. At the floor there is nothing left to back off
		// to: an upstream still refusing everything there is down, and the
		// breaker above should hear so at once, not after a queue.
		time.AfterFunc(a.holdFor(rtt), s.release)
	} else {
		s.release()
	}
	ws := a.windowStart.Load()
	if ws == 0 {
		ws = a.begin(n, start)
	}
	// During a probe only attempts admitted under the halved limit measure
	// the upstream's baseline; those admitted before still queued behind
	// the full limit.
	if ps := a.probeStart.Load(); ps == 0 || start >= ps {
		switch o {
		case outcomeLatency:
			a.sum.Add(int64(rtt))
			a.samples.Add(1)
		case outcomeOverload:
			a.overloads.Add(1)
		}
	}
	if !a.windowOver(n, ws) || !a.mu.TryLock() {
		return ConcurrencyStats{}, false
	}
	defer a.mu.Unlock()
	if !a.windowOver(n, a.windowStart.Load()) { // closed by another attempt meanwhile
		return ConcurrencyStats{}, false
	}
	a.update(n)
	return a.statsLocked(), true
}

// begin opens the first window at start, when the first outcome arrives, and
// returns its start.
func (a *adaptive) begin(n, start int64) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ws := a.windowStart.Load(); ws != 0 {
		return ws
	}
	a.nextProbe = time.Duration(n) + jittered(a.cfg.probeInterval)
	a.windowStart.Store(start)
	return start
}

// windowOver reports whether the window that began at ws is over at n: it
// has lasted its length and holds enough outcomes to say something.
func (a *adaptive) windowOver(n, ws int64) bool {
	return time.Duration(n-ws) >= a.cfg.window && a.samples.Load()+a.overloads.Load() >= adaptiveMinSamples
}

// holdFor returns how much longer than rtt the slot of a shed attempt is
// held: up to the baseline latency, or a window while no baseline is known
// yet.
func (a *adaptive) holdFor(rtt time.Duration) time.Duration {
	if b := time.Duration(a.baselineNs.Load()); b > 0 {
		return b - rtt
	}
	return a.cfg.window - rtt
}

// update closes the window at n (since epoch): it moves the limit and opens
// the next window. a.mu must be held.
func (a *adaptive) update(n int64) {
	c := a.cfg
	now := time.Duration(n)
	before := a.limit
	samples, sum, overloads := a.samples.Load(), a.sum.Load(), a.overloads.Load()
	if samples > 0 {
		a.latency = time.Duration(sum / samples)
	}
	switch {
	case a.probing:
		// The window under the halved limit measured the upstream with
		// little of our own queueing in it: that is the baseline now, up or
		// down, which is what keeps it from drifting.
		if samples > 0 {
			a.baseline = a.latency
		}
		a.probing = false
		a.probeStart.Store(0)
		a.limit = a.limitBeforeProbe
		a.nextProbe = now + jittered(c.probeInterval)
	case samples > 0:
		if a.baseline == 0 || a.latency < a.baseline {
			a.baseline = a.latency
		}
		g := 1.0 // a latency too short to measure shows no queueing (and must not divide by zero)
		if a.latency > 0 {
			g = min(1, max(maxDecrease, c.tolerance*float64(a.baseline)/float64(a.latency)))
		}
		next := a.limit*g + math.Sqrt(a.limit)
		if next > a.limit && float64(a.sem.peak.Load()) < a.limit/2 {
			next = a.limit // not in use: no evidence that more would be served
		}
		a.limit = next
	}
	a.baselineNs.Store(int64(a.baseline))
	if overloads > 0 {
		share := float64(overloads) / float64(samples+overloads)
		a.limit *= max(maxDecrease, 1-share)
	}
	// Latency and shedding often come together; together they still cut
	// at most half per window, so one bad window cannot collapse the limit.
	a.limit = max(a.limit, before*maxDecrease)
	a.limit = min(max(a.limit, float64(c.min)), float64(c.max))
	limit := int(a.limit)
	if !a.probing && a.baseline > 0 && now >= a.nextProbe {
		a.probing = true
		a.probeStart.Store(n)
		a.limitBeforeProbe = a.limit
		limit = max(c.min, limit/2)
	}
	a.sem.setMax(limit)
	a.windowStart.Store(n)
	a.samples.Add(-samples)
	a.sum.Add(-sum)
	a.overloads.Add(-overloads)
	a.sem.resetPeak()
}

// stats returns a snapshot.
func (a *adaptive) stats() ConcurrencyStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.statsLocked()
}

// statsLocked returns a snapshot; a.mu must be held.
func (a *adaptive) statsLocked() ConcurrencyStats {
	cur, waiting := a.sem.inUse()
	return ConcurrencyStats{
		Adaptive: true,
		Limit:    a.sem.limit(),
		InFlight: cur,
		Queued:   waiting,
		Baseline: a.baseline,
		Latency:  a.latency,
	}
}

// jittered returns d spread over [0.9·d, 1.1·d], so replicas started together
// do not probe together.
func jittered(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
}
