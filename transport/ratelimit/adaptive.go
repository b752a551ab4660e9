package ratelimit

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
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
// Every field is guarded by sem.mu.
type adaptive struct {
	sem *semaphore
	cfg *adaptiveConfig

	limit    float64
	baseline time.Duration
	latency  time.Duration // mean of the last window

	windowStart      time.Time
	samples          int
	sum              time.Duration
	overloads        int
	probing          bool
	probeStart       time.Time
	limitBeforeProbe float64
	nextProbe        time.Time
	started          bool
}

func newAdaptive(cfg *adaptiveConfig, queue int) *adaptive {
	initial := min(max(cfg.initial, cfg.min), cfg.max)
	a := &adaptive{cfg: cfg, limit: float64(initial)}
	a.sem = newSemaphore(initial, queue)
	return a
}

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

// done records the outcome o of an attempt admitted at start whose response
// headers (or error) came after rtt, and releases its slot, in one critical
// section. It returns the new stats when it recomputed the limit (once per
// window), for the observer.
func (a *adaptive) done(now, start time.Time, rtt time.Duration, o outcome) (ConcurrencyStats, bool) {
	s := a.sem
	s.mu.Lock()
	defer s.mu.Unlock()
	if hold := a.holdFor(rtt); o == outcomeOverload && hold > 0 && s.max > a.cfg.min {
		// A shed answer comes back at once; its slot, freed at once, would
		// take the next waiter straight to the same refusal, so one slot
		// above what the upstream accepts would turn most of the queue into
		// 503s. Held for the baseline latency, it weighs what a served
		// request weighs. At the floor there is nothing left to back off
		// to: an upstream still refusing everything there is down, and the
		// breaker above should hear so at once, not after a queue.
		time.AfterFunc(hold, s.release)
	} else {
		s.releaseLocked()
	}
	if !a.started {
		a.started = true
		a.windowStart = start
		a.nextProbe = now.Add(jittered(a.cfg.probeInterval))
	}
	// During a probe only attempts admitted under the halved limit measure
	// the upstream's baseline; those admitted before still queued behind
	// the full limit.
	if !(a.probing && start.Before(a.probeStart)) {
		switch o {
		case outcomeLatency:
			a.samples++
			a.sum += rtt
		case outcomeOverload:
			a.overloads++
		}
	}
	if now.Sub(a.windowStart) < a.cfg.window || a.samples+a.overloads < adaptiveMinSamples {
		return ConcurrencyStats{}, false
	}
	a.update(now)
	return a.statsLocked(), true
}

// holdFor returns how much longer than rtt the slot of a shed attempt is
// held: up to the baseline latency, or a window while no baseline is known
// yet. a.sem.mu must be held.
func (a *adaptive) holdFor(rtt time.Duration) time.Duration {
	if a.baseline > 0 {
		return a.baseline - rtt
	}
	return a.cfg.window - rtt
}

// update closes the window: it moves the limit and opens the next window.
// a.sem.mu must be held.
func (a *adaptive) update(now time.Time) {
	c := a.cfg
	before := a.limit
	if a.samples > 0 {
		a.latency = a.sum / time.Duration(a.samples)
	}
	switch {
	case a.probing:
		// The window under the halved limit measured the upstream with
		// little of our own queueing in it: that is the baseline now, up or
		// down, which is what keeps it from drifting.
		if a.samples > 0 {
			a.baseline = a.latency
		}
		a.probing = false
		a.limit = a.limitBeforeProbe
		a.nextProbe = now.Add(jittered(c.probeInterval))
	case a.samples > 0:
		if a.baseline == 0 || a.latency < a.baseline {
			a.baseline = a.latency
		}
		g := 1.0 // a latency too short to measure shows no queueing (and must not divide by zero)
		if a.latency > 0 {
			g = min(1, max(maxDecrease, c.tolerance*float64(a.baseline)/float64(a.latency)))
		}
		next := a.limit*g + math.Sqrt(a.limit)
		if next > a.limit && float64(a.sem.peak) < a.limit/2 {
			next = a.limit // not in use: no evidence that more would be served
		}
		a.limit = next
	}
	if a.overloads > 0 {
		share := float64(a.overloads) / float64(a.samples+a.overloads)
		a.limit *= max(maxDecrease, 1-share)
	}
	// Latency and shedding often come together; together they still cut
	// at most half per window, so one bad window cannot collapse the limit.
	a.limit = max(a.limit, before*maxDecrease)
	a.limit = min(max(a.limit, float64(c.min)), float64(c.max))
	limit := int(a.limit)
	if !a.probing && a.baseline > 0 && !now.Before(a.nextProbe) {
		a.probing = true
		a.probeStart = now
		a.limitBeforeProbe = a.limit
		limit = max(c.min, limit/2)
	}
	a.sem.setMaxLocked(limit)
	a.windowStart = now
	a.samples, a.sum, a.overloads = 0, 0, 0
	a.sem.peak = a.sem.cur
}

// stats returns a snapshot.
func (a *adaptive) stats() ConcurrencyStats {
	a.sem.mu.Lock()
	defer a.sem.mu.Unlock()
	return a.statsLocked()
}

func (a *adaptive) statsLocked() ConcurrencyStats {
	return ConcurrencyStats{
		Adaptive: true,
		Limit:    a.sem.max,
		InFlight: a.sem.cur,
		Queued:   a.sem.waiters.Len(),
		Baseline: a.baseline,
		Latency:  a.latency,
	}
}

// jittered returns d spread over [0.9·d, 1.1·d], so replicas started together
// do not probe together.
func jittered(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
}
