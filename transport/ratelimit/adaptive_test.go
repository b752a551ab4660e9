package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/internal/contracttest"
)

// The adaptive tests drive a simulated upstream inside a testing/synctest
// bubble, whose clock is virtual: seconds of load run in a fraction of a
// second of real time and the figures do not depend on the machine.

const (
	adaptiveURL = "http://a.test/"
	adaptiveKey = "http://a.test:80"
)

// simUpstream is an upstream simulated for testing/synctest. Each request is
// worked on for work (read when it arrives, so a test can change it) by one
// of workers; a nil workers is unbounded. More requests than workers wait for
// one, so the latency is about ceil(inFlight/W)·work, as a server of fixed
// capacity queues. A request that arrives while more than shedAbove (when
// positive) are in flight, or for which shedIf returns true, is answered 503
// at once, without Retry-After, as an overloaded server sheds.
type simUpstream struct {
	work      atomic.Int64 // time.Duration
	workers   chan struct{}
	shedAbove int64
	shedIf    func() bool
	onArrive  func(inFlight int64) // called at every arrival, with the count in flight

	inFlight, maxInFlight, arrivals, served, shed atomic.Int64
}

func newSimUpstream(work time.Duration, workers int) *simUpstream {
	u := &simUpstream{}
	u.work.Store(int64(work))
	if workers > 0 {
		u.workers = make(chan struct{}, workers)
	}
	return u
}

func (u *simUpstream) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	ctx := req.Context()
	u.arrivals.Add(1)
	n := u.inFlight.Add(1)
	defer u.inFlight.Add(-1)
	for m := u.maxInFlight.Load(); n > m && !u.maxInFlight.CompareAndSwap(m, n); m = u.maxInFlight.Load() {
	}
	if u.onArrive != nil {
		u.onArrive(n)
	}
	if (u.shedAbove > 0 && n > u.shedAbove) || (u.shedIf != nil && u.shedIf()) {
		u.shed.Add(1)
		return simResp(req, http.StatusServiceUnavailable), nil
	}
	if u.workers != nil {
		select {
		case u.workers <- struct{}{}:
			defer func() { <-u.workers }()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	t := time.NewTimer(time.Duration(u.work.Load()))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	u.served.Add(1)
	return simResp(req, http.StatusOK), nil
}

func simResp(req *http.Request, code int) *http.Response {
	return &http.Response{
		StatusCode: code, Status: http.StatusText(code), Header: http.Header{}, Request: req,
		Body: io.NopCloser(strings.NewReader("ok")),
	}
}

// loopRun is what a closed loop of callers saw.
type loopRun struct {
	calls, ok, unavailable, failed atomic.Int64
}

// closedLoop drives callers that each send request after request through rt
// for d of virtual time, reading every body to the end and closing it.
func closedLoop(rt http.RoundTripper, callers int, d time.Duration) *loopRun {
	run := &loopRun{}
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for range callers {
		wg.Go(func() {
			for time.Now().Before(end) {
				t0 := time.Now()
				req, _ := http.NewRequest(http.MethodGet, adaptiveURL, nil)
				resp, err := rt.RoundTrip(req)
				run.calls.Add(1)
				switch {
				case err != nil:
					run.failed.Add(1)
				case resp.StatusCode == http.StatusOK:
					run.ok.Add(1)
				case resp.StatusCode == http.StatusServiceUnavailable:
					run.unavailable.Add(1)
				default:
					run.failed.Add(1)
				}
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if time.Since(t0) == 0 {
					// An answer in no virtual time: without a pause the
					// caller would spin and the bubble's clock never move.
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	return run
}

// adaptiveSample is the adaptive state of adaptiveKey at one moment.
type adaptiveSample struct {
	at time.Duration // since sampling began
	ConcurrencyStats
	probing bool
}

// snapshotAdaptive reads the adaptive state of adaptiveKey, including
// whether a baseline probe is under way, in one critical section.
func snapshotAdaptive(tr *Transport) (adaptiveSample, bool) {
	st, ok := tr.states.Peek(adaptiveKey)
	if !ok || st.adaptive == nil {
		return adaptiveSample{}, false
	}
	a := st.adaptive
	a.mu.Lock()
	defer a.mu.Unlock()
	return adaptiveSample{ConcurrencyStats: a.statsLocked(), probing: a.probing}, true
}

// sampleAdaptive records the adaptive state of adaptiveKey every interval
// (once it exists) until the returned function is called, which returns the
// samples.
func sampleAdaptive(tr *Transport, every time.Duration) (stop func() []adaptiveSample) {
	var samples []adaptiveSample
	done := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(finished)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if s, ok := snapshotAdaptive(tr); ok {
					s.at = time.Since(start)
					samples = append(samples, s)
				}
			}
		}
	}()
	return func() []adaptiveSample {
		close(done)
		<-finished
		return samples
	}
}

// meanLimit returns the mean limit of the samples taken at or after from.
func meanLimit(samples []adaptiveSample, from time.Duration) float64 {
	sum, n := 0, 0
	for _, s := range samples {
		if s.at >= from {
			sum += s.Limit
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return float64(sum) / float64(n)
}

// limitRange returns the lowest and highest limit of the samples taken at or
// after from.
func limitRange(samples []adaptiveSample, from time.Duration) (lo, hi int) {
	lo = -1
	for _, s := range samples {
		if s.at < from {
			continue
		}
		if lo < 0 || s.Limit < lo {
			lo = s.Limit
		}
		hi = max(hi, s.Limit)
	}
	return lo, hi
}

// limitRecorder is an Observer.Concurrency that keeps every limit reported.
type limitRecorder struct {
	mu     sync.Mutex
	limits []int
}

func (r *limitRecorder) observer() Observer {
	return Observer{Concurrency: func(_ context.Context, key string, s ConcurrencyStats) {
		if key != adaptiveKey {
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.limits = append(r.limits, s.Limit)
	}}
}

func (r *limitRecorder) all() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.limits...)
}

// TestAdaptiveGrowth proves that a healthy upstream (10 ms whatever the
// load) with more callers than the ceiling takes the limit from
// DefaultInitialConcurrency to the ceiling within a couple of seconds, never
// past it, and that the requests in flight never exceed the limit. A limit
// that grew slowly would hold back a healthy upstream after every restart;
// one that let more in flight than it says would protect nothing.
func TestAdaptiveGrowth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			ceiling = 100
			callers = 200
			latency = 10 * time.Millisecond
		)
		up := newSimUpstream(latency, 0)
		tr := NewTransport(up, WithAdaptiveConcurrency(DefaultMinConcurrency, ceiling))
		var violations, overCeiling atomic.Int64
		var worst atomic.Value // string
		up.onArrive = func(n int64) {
			s, _ := tr.Concurrency(adaptiveKey)
			if s.InFlight > s.Limit || int(n) > s.Limit {
				violations.Add(1)
				worst.Store(fmt.Sprintf("upstream %d, slots %d, limit %d", n, s.InFlight, s.Limit))
			}
			if s.Limit > ceiling {
				overCeiling.Add(1)
			}
		}
		stop := sampleAdaptive(tr, 10*time.Millisecond)
		run := closedLoop(tr, callers, 2500*time.Millisecond)
		samples := stop()

		if len(samples) == 0 {
			t.Fatal("no samples")
		}
		if got := samples[0].Limit; got != DefaultInitialConcurrency {
			t.Errorf("limit at %v: got %d; want DefaultInitialConcurrency (%d)", samples[0].at, got, DefaultInitialConcurrency)
		}
		reached := time.Duration(-1)
		for _, s := range samples {
			if s.Limit == ceiling {
				reached = s.at
				break
			}
		}
		_, hi := limitRange(samples, 0)
		t.Logf("limit %d → %d in %v; %d calls, %d ok, most in flight at the upstream %d",
			samples[0].Limit, hi, reached, run.calls.Load(), run.ok.Load(), up.maxInFlight.Load())
		if reached < 0 || reached > 2*time.Second {
			t.Errorf("limit reached the ceiling at %v (highest %d); want the ceiling %d within 2s", reached, hi, ceiling)
		}
		if hi > ceiling || overCeiling.Load() > 0 {
			t.Errorf("highest limit %d (%d arrivals saw it over the ceiling); want at most %d", hi, overCeiling.Load(), ceiling)
		}
		if n := violations.Load(); n > 0 {
			t.Errorf("%d arrivals found more in flight than the limit (last: %v); want none", n, worst.Load())
		}
		if got := up.maxInFlight.Load(); got > ceiling {
			t.Errorf("most in flight at the upstream: got %d; want at most %d", got, ceiling)
		}
	})
}

// TestAdaptiveNoGrowthWhenNotInUse proves that a limit not in use does not
// grow: 3 callers in a closed loop never hold half of the initial limit, so
// the windows say nothing about whether more would be served, and the limit
// stays at DefaultInitialConcurrency. Otherwise a quiet period would leave
// the ceiling open, and the next burst would flood the upstream with it.
func TestAdaptiveNoGrowthWhenNotInUse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newSimUpstream(10*time.Millisecond, 0)
		tr := NewTransport(up, WithAdaptiveConcurrency(DefaultMinConcurrency, 100))
		stop := sampleAdaptive(tr, 10*time.Millisecond)
		run := closedLoop(tr, 3, 3*time.Second)
		samples := stop()

		lo, hi := limitRange(samples, 0)
		last := samples[len(samples)-1]
		t.Logf("%d calls; limit between %d and %d; latency %v, baseline %v", run.calls.Load(), lo, hi, last.Latency, last.Baseline)
		if last.Latency == 0 {
			t.Fatalf("latency of the last window: got 0; want it measured (no window closed)")
		}
		if lo != DefaultInitialConcurrency || hi != DefaultInitialConcurrency {
			t.Errorf("limit between %d and %d; want %d throughout", lo, hi, DefaultInitialConcurrency)
		}
	})
}

// capacityDrill is the fixed-capacity drill of TestAdaptiveLatencyInflation
// and TestAdaptiveBaselineNoDrift: 16 workers of 10 ms (1 600 requests/s),
// more in flight queueing inside the upstream, 200 callers against a
// ceiling of 100.
const (
	drillWorkers = 16
	drillWork    = 10 * time.Millisecond
	drillCallers = 200
)

// TestAdaptiveLatencyInflation proves that the gradient finds the capacity
// of an upstream that queues instead of refusing: with 16 workers of 10 ms
// and 200 callers, the limit settles between W and 3·W (the fixed point of
// limit·1.5·baseline/latency + √limit is about 1.5·W + √limit), so the
// upstream's own queue stays short, while goodput stays at least 95 % of
// W/D. A limit stuck at the ceiling would put 84 requests in the upstream's
// queue (latency ×6); one below W would leave workers idle.
func TestAdaptiveLatencyInflation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const duration = 5 * time.Second
		up := newSimUpstream(drillWork, drillWorkers)
		tr := NewTransport(up, WithAdaptiveConcurrency(DefaultMinConcurrency, 100))
		stop := sampleAdaptive(tr, 10*time.Millisecond)
		start := time.Now()
		run := closedLoop(tr, drillCallers, duration)
		elapsed := time.Since(start)
		samples := stop()

		capacity := float64(drillWorkers) * float64(time.Second) / float64(drillWork)
		goodput := float64(up.served.Load()) / elapsed.Seconds()
		mean := meanLimit(samples, 2*time.Second)
		lo, hi := limitRange(samples, 2*time.Second)
		last := samples[len(samples)-1]
		t.Logf("limit over the last 3s: mean %.1f, between %d and %d; baseline %v, latency %v; goodput %.0f/s (%.1f %% of %.0f/s); %d calls, %d failed; most in flight at the upstream %d",
			mean, lo, hi, last.Baseline, last.Latency, goodput, 100*goodput/capacity, capacity, run.calls.Load(), run.failed.Load(), up.maxInFlight.Load())
		if mean < drillWorkers || mean > 3*drillWorkers {
			t.Errorf("mean limit over the last 3s: got %.1f; want between W=%d and 3·W=%d", mean, drillWorkers, 3*drillWorkers)
		}
		if goodput < 0.95*capacity {
			t.Errorf("goodput: got %.0f/s; want at least 95 %% of %.0f/s", goodput, capacity)
		}
		if n := run.failed.Load(); n > 0 {
			t.Errorf("failed calls: got %d; want 0", n)
		}
	})
}

// TestAdaptiveOverloadCut proves that an upstream answering 503 to every
// request (after 5 ms) takes the limit down to min within a few windows, never by more
// than half in one window (a single bad window must not empty the pipe), and
// that the limit then stays at min, never below: a few requests keep
// probing the upstream so that its recovery is seen.
func TestAdaptiveOverloadCut(t *testing.T) {
	for _, floor := range []int{2, DefaultMinConcurrency, 7} {
		t.Run(fmt.Sprintf("min=%d", floor), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				up := contracttest.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
					// Refused after 5 ms, not at once: at the floor a shed
					// slot is freed at once, and 50 callers refused in no
					// virtual time would spin.
					select {
					case <-time.After(5 * time.Millisecond):
					case <-req.Context().Done():
						return nil, req.Context().Err()
					}
					return simResp(req, http.StatusServiceUnavailable), nil
				})
				rec := &limitRecorder{}
				tr := NewTransport(up, WithAdaptiveConcurrency(floor, 100), WithObserver(rec.observer()))
				stop := sampleAdaptive(tr, 10*time.Millisecond)
				run := closedLoop(tr, 50, 2*time.Second)
				samples := stop()

				seq := rec.all()
				reached := time.Duration(-1)
				for _, s := range samples {
					if s.Limit == floor {
						reached = s.at
						break
					}
				}
				firstMin := -1
				for i, l := range seq {
					if l == floor {
						firstMin = i
						break
					}
				}
				lo, hi := limitRange(samples, reached)
				shown := seq[:min(len(seq), 8)]
				t.Logf("limits of the first windows %v (%d windows); at min from window %d, %v on; %d calls, all 503: %v",
					shown, len(seq), firstMin, reached, run.calls.Load(), run.unavailable.Load() == run.calls.Load())
				prev := DefaultInitialConcurrency
				for i, l := range seq {
					if l < prev/2 {
						t.Errorf("window %d: limit %d after %d; want at most a halving per window", i, l, prev)
					}
					if l < floor {
						t.Errorf("window %d: limit %d; want at least min %d", i, l, floor)
					}
					prev = l
				}
				windows := 0 // halvings from the initial limit to min
				for l := float64(DefaultInitialConcurrency); l > float64(floor); l /= 2 {
					windows++
				}
				if firstMin < 0 || firstMin >= windows {
					t.Errorf("limit reached min %d in window %d (limits %v); want within %d windows", floor, firstMin, shown, windows)
				}
				if reached < 0 || reached > time.Second {
					t.Errorf("limit reached min at %v; want within 1s", reached)
				}
				if lo != floor || hi != floor {
					t.Errorf("limit after reaching min: between %d and %d; want %d", lo, hi, floor)
				}
			})
		})
	}
}

// TestAdaptiveCutAtMostHalfPerWindow proves that one window cuts the limit
// by at most half even when both signals fire at once: the upstream's
// latency jumps fivefold (the gradient's floor, ×0.5) and half its answers
// become instant 503s (the overload cut's floor, ×0.5) in the same moment.
// Each bound alone holds the cut to half; applied one after the other they
// would cut to about a quarter, emptying the pipe in one bad window, which
// is what the bound is there to prevent.
func TestAdaptiveCutAtMostHalfPerWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := newSimUpstream(10*time.Millisecond, 0)
		var overloaded atomic.Bool
		var mu sync.Mutex
		rng := rand.New(rand.NewPCG(3, 4))
		up.shedIf = func() bool {
			if !overloaded.Load() {
				return false
			}
			mu.Lock()
			defer mu.Unlock()
			return rng.Float64() < 0.5
		}
		rec := &limitRecorder{}
		tr := NewTransport(up, WithAdaptiveConcurrency(DefaultMinConcurrency, 100), WithObserver(rec.observer()))
		done := make(chan struct{})
		go func() {
			defer close(done)
			closedLoop(tr, 200, 3*time.Second)
		}()
		time.Sleep(1500 * time.Millisecond)
		atStep, _ := tr.Concurrency(adaptiveKey)
		before := len(rec.all())
		up.work.Store(int64(50 * time.Millisecond))
		overloaded.Store(true)
		<-done

		seq := rec.all()
		t.Logf("limit %d at the step; the windows after it: %v", atStep.Limit, seq[before:min(len(seq), before+8)])
		prev := DefaultInitialConcurrency
		for i, l := range seq {
			if l < prev/2 {
				t.Errorf("window %d: limit %d after %d; want at most a halving per window", i, l, prev)
			}
			prev = l
		}
	})
}

// TestAdaptiveZeroLatency proves that an upstream answering in no
// measurable time (an in-memory stub under testing/synctest, as callers of
// this package test their own code, or a fake clock) leaves the limit within
// [min, max] and the requests flowing. A window whose mean latency is 0 sets
// the baseline to 0 and the gradient to 0/0: a NaN limit never recovers and
// its int conversion refuses every request.
func TestAdaptiveZeroLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const floor, ceiling = DefaultMinConcurrency, 100
		tr := NewTransport(okNext(new(atomic.Int64)), WithAdaptiveConcurrency(floor, ceiling),
			WithQueueTimeout(50*time.Millisecond))
		run := closedLoop(tr, 30, time.Second)
		s, _ := tr.Concurrency(adaptiveKey)
		t.Logf("%d calls, %d failed; limit %d, baseline %v", run.calls.Load(), run.failed.Load(), s.Limit, s.Baseline)
		if s.Limit < floor || s.Limit > ceiling {
			t.Errorf("limit: got %d; want within [%d, %d]", s.Limit, floor, ceiling)
		}
		if n := run.failed.Load(); n > 0 {
			t.Errorf("failed calls: got %d of %d; want 0", n, run.calls.Load())
		}
	})
}

// TestAdaptiveStray503 proves that the overload cut is graded by the share of
// overload signals: an upstream that answers 503 to a random 5 % of requests
// (at once) and serves the rest in 10 ms keeps the limit at or near the
// ceiling (at least 80 % of it on average), because √limit of headroom per
// window outweighs a 5 % cut. A limiter that halved on any 503, as a
// breaker-like AIMD does, would hold a healthy upstream at a fraction of its
// capacity for the odd shed request.
func TestAdaptiveStray503(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ceiling = 100
		up := newSimUpstream(10*time.Millisecond, 0)
		var mu sync.Mutex
		rng := rand.New(rand.NewPCG(1, 2))
		up.shedIf = func() bool {
			mu.Lock()
			defer mu.Unlock()
			return rng.Float64() < 0.05
		}
		tr := NewTransport(up, WithAdaptiveConcurrency(DefaultMinConcurrency, ceiling))
		stop := sampleAdaptive(tr, 10*time.Millisecond)
		run := closedLoop(tr, 200, 3*time.Second)
		samples := stop()

		mean := meanLimit(samples, 1500*time.Millisecond)
		lo, hi := limitRange(samples, 1500*time.Millisecond)
		share := float64(up.shed.Load()) / float64(up.arrivals.Load())
		t.Logf("%.1f %% of %d arrivals answered 503; limit over the last 1.5s: mean %.1f, between %d and %d", 100*share, up.arrivals.Load(), mean, lo, hi)
		if share < 0.04 || share > 0.06 {
			t.Fatalf("share of 503s: got %.3f; want about 0.05 (the drill is broken)", share)
		}
		if mean < 0.8*ceiling {
			t.Errorf("mean limit over the last 1.5s: got %.1f; want at least 80 %% of %d", mean, ceiling)
		}
		if n := run.failed.Load(); n > 0 {
			t.Errorf("failed calls: got %d; want 0", n)
		}
	})
}

// TestAdaptiveShedSlotHeld proves that the slot of a shed answer is held for
// about the baseline latency rather than freed at once: against an upstream
// that sheds instantly past 30 in flight and serves the rest in 10 ms, every
// slot, served or shed, turns over at most once per 10 ms, so the attempts
// per second stay within limit/D. Freed at once, a slot above what the
// upstream accepts would hand the queue one instant 503 after another. It
// also proves that the held slots are released: once the drill ends and the
// hold timers fire, nothing is in flight.
func TestAdaptiveShedSlotHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			shedAbove = 30
			work      = 10 * time.Millisecond
			duration  = 3 * time.Second
		)
		up := newSimUpstream(work, 0)
		up.shedAbove = shedAbove
		tr := NewTransport(up, WithAdaptiveConcurrency(DefaultMinConcurrency, 100))
		stop := sampleAdaptive(tr, 5*time.Millisecond)
		start := time.Now()
		run := closedLoop(tr, 200, duration)
		elapsed := time.Since(start)
		samples := stop()

		_, hi := limitRange(samples, 0)
		mean := meanLimit(samples, time.Second)
		perSecond := func(n int64) float64 { return float64(n) / elapsed.Seconds() }
		bound := float64(hi) * float64(time.Second) / float64(work)
		t.Logf("arrivals %.0f/s, 503s %.0f/s (%.1f %%), served %.0f/s; highest limit %d (bound %.0f/s), mean limit after 1s %.1f; %d calls",
			perSecond(up.arrivals.Load()), perSecond(up.shed.Load()), 100*float64(up.shed.Load())/float64(up.arrivals.Load()),
			perSecond(up.served.Load()), hi, bound, mean, run.calls.Load())
		if got := perSecond(up.arrivals.Load()); got > 1.1*bound {
			t.Errorf("attempts: got %.0f/s; want at most about limit/D = %.0f/s", got, bound)
		}
		if got := perSecond(up.shed.Load()); got > bound {
			t.Errorf("503s: got %.0f/s; want at most limit/D = %.0f/s", got, bound)
		}

		// One more request, shed, once the callers are gone: its slot is
		// held after its body is closed, for the baseline, then released.
		up.shedIf = func() bool { return true }
		resp, err := tr.RoundTrip(getRequest(t, adaptiveURL))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		held, _ := tr.Concurrency(adaptiveKey)
		time.Sleep(held.Baseline / 2)
		halfway, _ := tr.Concurrency(adaptiveKey)
		time.Sleep(time.Second) // past every hold (the baseline, or a window before one is known)
		synctest.Wait()
		after, ok := tr.Concurrency(adaptiveKey)
		st, _ := tr.states.Peek(adaptiveKey)
		cur, waiting := st.sem.inUse()
		t.Logf("a shed slot after its body was closed: %d in flight, %v later %d (baseline %v), a second later %d",
			held.InFlight, held.Baseline/2, halfway.InFlight, held.Baseline, after.InFlight)
		if held.InFlight != 1 || halfway.InFlight != 1 {
			t.Errorf("in flight after a shed answer's body was closed: got %d, then %d half a baseline later; want 1 (held)", held.InFlight, halfway.InFlight)
		}
		if !ok || after.InFlight != 0 || after.Queued != 0 || cur != 0 || waiting != 0 {
			t.Errorf("after the drill: got InFlight %d, Queued %d, cur %d, waiters %d; want all 0", after.InFlight, after.Queued, cur, waiting)
		}
	})
}

// TestAdaptiveBaselineFollowsSlowerUpstream proves that the baseline is
// measured afresh (failsafe-go #127): when an upstream becomes genuinely
// slower (10 ms to 50 ms for good, no queueing), the minimum latency seen so
// far stays 10 ms and the gradient holds the limit near the floor, until the
// next probe measures 50 ms and the limit can grow again. A baseline kept
// for ever would hold a slower but healthy upstream at min.
func TestAdaptiveBaselineFollowsSlowerUpstream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			before, after = 10 * time.Millisecond, 50 * time.Millisecond
			probe         = 2 * time.Second
		)
		up := newSimUpstream(before, 0)
		tr := NewTransport(up, WithAdaptiveConcurrency(DefaultMinConcurrency, 100),
			withAdaptiveTuning(func(c *adaptiveConfig) { c.probeInterval = probe }))
		stop := sampleAdaptive(tr, 10*time.Millisecond)
		done := make(chan struct{})
		go func() {
			defer close(done)
			closedLoop(tr, 50, 6*time.Second)
		}()
		time.Sleep(time.Second)
		atStep, _ := tr.Concurrency(adaptiveKey)
		up.work.Store(int64(after))
		// The first probe comes within 1.1·probe of the first response.
		time.Sleep(500 * time.Millisecond)
		stale, _ := tr.Concurrency(adaptiveKey)
		time.Sleep(2 * time.Second)
		fresh, _ := tr.Concurrency(adaptiveKey)
		<-done
		samples := stop()
		end := samples[len(samples)-1]

		t.Logf("at the step (1s): limit %d, baseline %v; 0.5s later: limit %d, baseline %v; after the probe (3.5s): limit %d, baseline %v; at 6s: limit %d, baseline %v",
			atStep.Limit, atStep.Baseline, stale.Limit, stale.Baseline, fresh.Limit, fresh.Baseline, end.Limit, end.Baseline)
		if got := atStep.Baseline; got != before {
			t.Errorf("baseline before the step: got %v; want %v", got, before)
		}
		if got := stale.Baseline; got != before {
			t.Errorf("baseline after the step, before any probe: got %v; want %v (the minimum seen)", got, before)
		}
		if got := fresh.Baseline; got < after*8/10 || got > after*12/10 {
			t.Errorf("baseline after the probe: got %v; want %v ±20 %%", got, after)
		}
		if end.Limit <= stale.Limit {
			t.Errorf("limit at the end: got %d; want it grown past %d once the baseline followed", end.Limit, stale.Limit)
		}
	})
}

// TestAdaptiveBaselineNoDrift proves that re-measuring the baseline does not
// let it drift up with our own queueing (failsafe-go #127): over three probe
// intervals against the fixed-capacity drill, each probe halves the limit
// below W, so the upstream's queue empties and the probe measures about D,
// and the limit stays between W and 3·W as in TestAdaptiveLatencyInflation.
// A baseline measured with our own requests queued would rise, raise the
// limit, queue more, and rise again.
func TestAdaptiveBaselineNoDrift(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			probe    = 2 * time.Second
			duration = 7 * time.Second // three probes at the latest jitter (1.1·probe) and their windows
		)
		up := newSimUpstream(drillWork, drillWorkers)
		tr := NewTransport(up, WithAdaptiveConcurrency(DefaultMinConcurrency, 100),
			withAdaptiveTuning(func(c *adaptiveConfig) { c.probeInterval = probe }))
		stop := sampleAdaptive(tr, 5*time.Millisecond)
		start := time.Now()
		run := closedLoop(tr, drillCallers, duration)
		elapsed := time.Since(start)
		samples := stop()

		probes, maxBaseline := 0, time.Duration(0)
		var baselines []time.Duration
		wasProbing := false
		for _, s := range samples {
			if s.probing && !wasProbing {
				probes++
			}
			if !s.probing && wasProbing {
				baselines = append(baselines, s.Baseline)
			}
			wasProbing = s.probing
			maxBaseline = max(maxBaseline, s.Baseline)
		}
		capacity := float64(drillWorkers) * float64(time.Second) / float64(drillWork)
		goodput := float64(up.served.Load()) / elapsed.Seconds()
		mean := meanLimit(samples, time.Second)
		lo, hi := limitRange(samples, time.Second)
		t.Logf("%d probes, baselines after them %v, highest baseline %v; limit after 1s: mean %.1f, between %d and %d; goodput %.0f/s (%.1f %%); %d calls, %d failed",
			probes, baselines, maxBaseline, mean, lo, hi, goodput, 100*goodput/capacity, run.calls.Load(), run.failed.Load())
		if probes < 3 {
			t.Errorf("probes: got %d; want at least 3", probes)
		}
		if maxBaseline > drillWork*5/4 {
			t.Errorf("highest baseline: got %v; want at most 1.25·D = %v", maxBaseline, drillWork*5/4)
		}
		if mean < drillWorkers || mean > 3*drillWorkers {
			t.Errorf("mean limit after 1s: got %.1f; want between W=%d and 3·W=%d", mean, drillWorkers, 3*drillWorkers)
		}
		if hi > 4*drillWorkers {
			t.Errorf("highest limit after 1s: got %d; want at most 4·W=%d", hi, 4*drillWorkers)
		}
		if goodput < 0.95*capacity {
			t.Errorf("goodput: got %.0f/s; want at least 95 %% of %.0f/s", goodput, capacity)
		}
	})
}

// timeoutError is an error whose Timeout method reports true, as net/http's
// response header timeout and a dial timeout are.
type timeoutError struct{}

func (timeoutError) Error() string { return "timeout awaiting response headers" }
func (timeoutError) Timeout() bool { return true }

// TestAdaptiveClassify proves which outcomes the limit reads as overload: a
// 429, a 503 and a timeout of the attempt itself (the base transport's, or a
// per-attempt deadline set above with callctx.ErrAttemptTimeout) are; other
// responses are latency samples; the caller's own cancel or deadline and a
// refused or reset connection say nothing about the upstream's load and are
// ignored. Counting the caller's impatience as overload would cut the limit
// of a healthy upstream whenever callers give up.
func TestAdaptiveClassify(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		live := context.Background()
		canceled, cancel := context.WithCancel(live)
		cancel()
		callerDeadline, cancel := context.WithTimeout(live, -time.Second)
		defer cancel()
		attemptDeadline, cancel := context.WithTimeoutCause(live, -time.Second, callctx.ErrAttemptTimeout)
		defer cancel()
		attemptCanceled, cancelCause := context.WithCancelCause(live)
		cancelCause(callctx.ErrAttemptTimeout)

		resp := func(code int) *http.Response { return &http.Response{StatusCode: code} }
		reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
		refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
		tests := []struct {
			name string
			ctx  context.Context
			resp *http.Response
			err  error
			want outcome
		}{
			{"503", live, resp(503), nil, outcomeOverload},
			{"429", live, resp(429), nil, outcomeOverload},
			{"200", live, resp(200), nil, outcomeLatency},
			{"404", live, resp(404), nil, outcomeLatency},
			{"500", live, resp(500), nil, outcomeLatency},
			{"Timeout() with a live context", live, nil, timeoutError{}, outcomeOverload},
			{"Timeout() in a *url.Error", live, nil, &url.Error{Op: "Get", URL: adaptiveURL, Err: timeoutError{}}, outcomeOverload},
			{"os.ErrDeadlineExceeded wrapped", live, nil, fmt.Errorf("read: %w", os.ErrDeadlineExceeded), outcomeOverload},
			{"caller canceled", canceled, nil, context.Canceled, outcomeIgnored},
			{"caller's deadline", callerDeadline, nil, context.DeadlineExceeded, outcomeIgnored},
			{"attempt deadline (ErrAttemptTimeout)", attemptDeadline, nil, context.DeadlineExceeded, outcomeOverload},
			{"canceled with cause ErrAttemptTimeout", attemptCanceled, nil, context.Canceled, outcomeOverload},
			{"connection reset", live, nil, reset, outcomeIgnored},
			{"connection refused", live, nil, refused, outcomeIgnored},
			{"other error", live, nil, errors.New("boom"), outcomeIgnored},
		}
		for _, tt := range tests {
			if got := classify(tt.ctx, tt.resp, tt.err); got != tt.want {
				t.Errorf("%s: got outcome %d; want %d", tt.name, got, tt.want)
			}
		}
	})
}

// TestAdaptiveOptions proves the option contract of WithAdaptiveConcurrency:
// invalid bounds panic with a message naming the option; it and
// WithConcurrency replace one another, the last one winning; the initial
// limit is DefaultInitialConcurrency clamped into [min, max].
func TestAdaptiveOptions(t *testing.T) {
	t.Run("panics", func(t *testing.T) {
		for _, tt := range []struct{ min, max int }{{0, 10}, {-1, 10}, {5, 4}} {
			func() {
				defer func() {
					msg := fmt.Sprint(recover())
					if !strings.HasPrefix(msg, "ratelimit: WithAdaptiveConcurrency") {
						t.Errorf("WithAdaptiveConcurrency(%d, %d): got panic %q; want one starting \"ratelimit: WithAdaptiveConcurrency\"", tt.min, tt.max, msg)
					}
				}()
				WithAdaptiveConcurrency(tt.min, tt.max)
			}()
		}
	})
	tests := []struct {
		name         string
		opts         []Option
		wantOK       bool
		wantAdaptive bool
		wantLimit    int
	}{
		{"adaptive after fixed", []Option{WithConcurrency(7), WithAdaptiveConcurrency(4, 100)}, true, true, DefaultInitialConcurrency},
		{"fixed after adaptive", []Option{WithAdaptiveConcurrency(4, 100), WithConcurrency(7)}, true, false, 7},
		{"WithConcurrency(0) after adaptive", []Option{WithAdaptiveConcurrency(4, 100), WithConcurrency(0)}, false, false, 0},
		{"initial raised to min", []Option{WithAdaptiveConcurrency(30, 50)}, true, true, 30},
		{"initial lowered to max", []Option{WithAdaptiveConcurrency(1, 5)}, true, true, 5},
		{"initial within bounds", []Option{WithAdaptiveConcurrency(4, 100)}, true, true, DefaultInitialConcurrency},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tr := NewTransport(okNext(new(atomic.Int64)), tt.opts...)
				resp, err := tr.RoundTrip(getRequest(t, adaptiveURL))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				s, ok := tr.Concurrency(adaptiveKey)
				if ok != tt.wantOK || s.Adaptive != tt.wantAdaptive || s.Limit != tt.wantLimit {
					t.Errorf("got ok %v, Adaptive %v, Limit %d; want ok %v, Adaptive %v, Limit %d",
						ok, s.Adaptive, s.Limit, tt.wantOK, tt.wantAdaptive, tt.wantLimit)
				}
			})
		})
	}
}

// getRequest returns a GET request for url with a background
// context.
func getRequest(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestAdaptiveContract proves that the adaptive limit keeps the slot
// contract of WithConcurrency: a slot is held until the caller closes the
// response body or reads it to the end, not until RoundTrip returns (a
// caller still reading a large body is still loading the upstream); it is
// released at once when next fails, and when next panics (net/http's server
// recovers handler panics, so a leaked slot would refuse the key for good);
// the slot of an attempt timeout is held for a window (no baseline yet), then
// released. Concurrency for a key never used reports ok false and creates no
// state, so a dashboard polling keys cannot fill the key map.
func TestAdaptiveContract(t *testing.T) {
	inFlight := func(t *testing.T, tr *Transport) int {
		t.Helper()
		s, ok := tr.Concurrency(adaptiveKey)
		if !ok || !s.Adaptive {
			t.Fatalf("Concurrency(%q): got ok %v, Adaptive %v; want both true", adaptiveKey, ok, s.Adaptive)
		}
		return s.InFlight
	}
	body := func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("hello")), Request: r}, nil
	}
	t.Run("released when the body is done", func(t *testing.T) {
		for _, finish := range []struct {
			name string
			f    func(io.ReadCloser)
		}{
			{"Close", func(b io.ReadCloser) { b.Close() }},
			{"read to EOF", func(b io.ReadCloser) { io.Copy(io.Discard, b) }},
		} {
			t.Run(finish.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					tr := NewTransport(contracttest.RoundTripFunc(body), WithAdaptiveConcurrency(1, 10))
					resp, err := tr.RoundTrip(getRequest(t, adaptiveURL))
					if err != nil {
						t.Fatal(err)
					}
					if got := inFlight(t, tr); got != 1 {
						t.Errorf("in flight after RoundTrip returned: got %d; want 1 (the body is not done)", got)
					}
					finish.f(resp.Body)
					if got := inFlight(t, tr); got != 0 {
						t.Errorf("in flight after %s: got %d; want 0", finish.name, got)
					}
					resp.Body.Close()
				})
			})
		}
	})
	t.Run("released on an error from next", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr := NewTransport(contracttest.RoundTripFunc(func(*http.Request) (*http.Response, error) {
				return nil, errors.New("connection refused")
			}), WithAdaptiveConcurrency(1, 10))
			if _, err := tr.RoundTrip(getRequest(t, adaptiveURL)); err == nil {
				t.Fatal("got no error; want next's")
			}
			if got := inFlight(t, tr); got != 0 {
				t.Errorf("in flight after next failed: got %d; want 0", got)
			}
		})
	})
	t.Run("attempt timeout held for a window", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr := NewTransport(contracttest.RoundTripFunc(func(*http.Request) (*http.Response, error) {
				return nil, timeoutError{}
			}), WithAdaptiveConcurrency(1, 10))
			if _, err := tr.RoundTrip(getRequest(t, adaptiveURL)); err == nil {
				t.Fatal("got no error; want next's")
			}
			if got := inFlight(t, tr); got != 1 {
				t.Errorf("in flight right after an instant attempt timeout: got %d; want 1 (held)", got)
			}
			time.Sleep(DefaultAdaptiveWindow)
			synctest.Wait()
			if got := inFlight(t, tr); got != 0 {
				t.Errorf("in flight a window later: got %d; want 0", got)
			}
		})
	})
	t.Run("released on a panic in next", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			calls := 0
			tr := NewTransport(contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
				calls++
				if calls == 1 {
					panic("boom")
				}
				return body(r)
			}), WithAdaptiveConcurrency(1, 1), WithQueue(0))
			func() {
				defer func() {
					if recover() == nil {
						t.Fatal("the panic did not propagate")
					}
				}()
				tr.RoundTrip(getRequest(t, adaptiveURL))
			}()
			if got := inFlight(t, tr); got != 0 {
				t.Errorf("in flight after the panic: got %d; want 0", got)
			}
			resp, err := tr.RoundTrip(getRequest(t, adaptiveURL))
			if err != nil {
				t.Fatalf("second request: got %v; want it admitted (the only slot was freed)", err)
			}
			resp.Body.Close()
		})
	})
	t.Run("unknown key", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr := NewTransport(contracttest.RoundTripFunc(body), WithAdaptiveConcurrency(1, 10))
			if s, ok := tr.Concurrency(adaptiveKey); ok {
				t.Errorf("Concurrency before any request: got %+v, ok true; want ok false", s)
			}
			resp, err := tr.RoundTrip(getRequest(t, adaptiveURL))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if s, ok := tr.Concurrency("http://b.test:80"); ok {
				t.Errorf("Concurrency of a key never used: got %+v, ok true; want ok false", s)
			}
			if got := tr.states.Len(); got != 1 {
				t.Errorf("keys held: got %d; want 1 (Concurrency created state)", got)
			}
		})
	})
}
