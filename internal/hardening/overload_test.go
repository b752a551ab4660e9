package hardening_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outboundhttp/outbound"
)

// simUpstream is an upstream of fixed capacity, simulated in process for
// testing/synctest (whose clock is virtual, so the run is exact and fast):
// workers requests are worked on at once, each for work; the others wait in
// a FIFO queue; a request that arrives while more than shedAbove are in
// flight is answered 503 at once, without Retry-After, as an overloaded
// server or its load balancer sheds.
type simUpstream struct {
	workers   chan struct{}
	work      time.Duration
	shedAbove int64

	inFlight  atomic.Int64
	arrivals  atomic.Int64
	shed      atomic.Int64
	served    atomic.Int64
	maxWorked atomic.Int64
	worked    atomic.Int64
}

func newSimUpstream(workers int, work time.Duration, shedAbove int) *simUpstream {
	return &simUpstream{workers: make(chan struct{}, workers), work: work, shedAbove: int64(shedAbove)}
}

func (u *simUpstream) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	u.arrivals.Add(1)
	n := u.inFlight.Add(1)
	defer u.inFlight.Add(-1)
	if n > u.shedAbove {
		u.shed.Add(1)
		return simResponse(req, http.StatusServiceUnavailable), nil
	}
	select {
	case u.workers <- struct{}{}:
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
	w := u.worked.Add(1)
	for m := u.maxWorked.Load(); w > m && !u.maxWorked.CompareAndSwap(m, w); m = u.maxWorked.Load() {
	}
	t := time.NewTimer(u.work)
	select {
	case <-t.C:
	case <-req.Context().Done():
		t.Stop()
		u.worked.Add(-1)
		<-u.workers
		return nil, req.Context().Err()
	}
	u.worked.Add(-1)
	<-u.workers
	u.served.Add(1)
	return simResponse(req, http.StatusOK), nil
}

func simResponse(req *http.Request, code int) *http.Response {
	return &http.Response{
		StatusCode: code, Status: http.StatusText(code), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}}, Request: req,
		Body: io.NopCloser(strings.NewReader(`{"ok":true}`)),
	}
}

// overloadRun is what a closed-loop run measured.
type overloadRun struct {
	calls, ok, failed int
	okInWindow        int // successes that ended within the run's duration
	duration          time.Duration
	p50, p99          time.Duration
	elapsed           time.Duration // until the last call ended
	failures          map[string]int
}

// goodput is the successes per second within the run's duration: calls
// still running when it ends do not stretch it.
func (r overloadRun) goodput() float64 {
	return float64(r.okInWindow) / r.duration.Seconds()
}

// runClosedLoop drives callers that each make call after call for d, each
// call with its own deadline, through c, and measures them.
func runClosedLoop(c *http.Client, url string, callers int, d, deadline time.Duration) overloadRun {
	var (
		mu  sync.Mutex
		run = overloadRun{failures: map[string]int{}}
		lat []time.Duration
		wg  sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(d)
	for range callers {
		wg.Go(func() {
			for time.Now().Before(end) {
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				t0 := time.Now()
				resp, err := c.Do(req)
				ok, why := false, ""
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					ok = err == nil && resp.StatusCode == http.StatusOK
					if !ok {
						why = resp.Status
					}
				}
				if err != nil {
					why = err.Error()
				}
				cancel()
				took := time.Since(t0)
				mu.Lock()
				run.calls++
				lat = append(lat, took)
				if ok {
					run.ok++
					if !time.Now().After(end) {
						run.okInWindow++
					}
				} else {
					run.failed++
					run.failures[why]++
				}
				mu.Unlock()
				if took < time.Millisecond {
					// A refusal takes no virtual time: without a pause the
					// caller would spin and the bubble's clock never move.
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	run.elapsed = time.Since(start)
	run.duration = d
	slices.Sort(lat)
	if len(lat) > 0 {
		run.p50 = lat[len(lat)/2]
		run.p99 = lat[len(lat)*99/100]
	}
	return run
}

// TestOverloadDefaultConfig is the overload drill of issue 15 on
// DefaultConfig, nothing tuned: 16 workers doing 10 ms of work each (1 600
// calls/s), 503 for anything past 48 in flight, 200 callers in a closed loop
// for 4 s, each call with a 2 s deadline. The stack must keep the upstream
// busy without making it shed: goodput at least 95 % of capacity, at most
// 0.5 % of calls failed, at most 1 % of arrivals answered 503. (A static
// limit of 100 with the old breaker served 16 calls/s here: the breaker read
// the shedding as an outage.)
func TestOverloadDefaultConfig(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			workers  = 16
			work     = 10 * time.Millisecond
			shed     = 48
			callers  = 200
			duration = 4 * time.Second
		)
		up := newSimUpstream(workers, work, shed)
		c, err := outbound.NewClient(outbound.DefaultConfig(), outbound.WithBase(up))
		if err != nil {
			t.Fatal(err)
		}
		run := runClosedLoop(c, "http://orders.internal/v1/orders/1", callers, duration, 2*time.Second)
		capacity := float64(workers) * float64(time.Second) / float64(work) // calls/s
		goodput := run.goodput()
		arrivals := up.arrivals.Load()
		t.Logf("goodput %.0f/s (%.1f %% of %.0f/s), %d calls, %d failed %v, %d arrivals, %d shed (%.2f %%), p50 %v, p99 %v, most worked at once %d",
			goodput, 100*goodput/capacity, capacity, run.calls, run.failed, run.failures, arrivals, up.shed.Load(),
			100*float64(up.shed.Load())/float64(arrivals), run.p50, run.p99, up.maxWorked.Load())
		if goodput < 0.95*capacity {
			t.Errorf("goodput %.0f/s; want at least 95 %% of the upstream's %.0f/s", goodput, capacity)
		}
		if float64(run.failed) > 0.005*float64(run.calls) {
			t.Errorf("%d of %d calls failed; want at most 0.5 %%: %v", run.failed, run.calls, run.failures)
		}
		if float64(up.shed.Load()) > 0.01*float64(arrivals) {
			t.Errorf("%d of %d arrivals shed with 503; want at most 1 %%", up.shed.Load(), arrivals)
		}
	})
}

// TestOverloadShapes plays other upstream shapes on DefaultConfig: a shedding
// threshold just above the worker count (the concurrency limit starts above
// it, so the first answers of the burst are 503s: the breaker must not read
// them as an outage), a slow upstream, a large one, and few callers. The
// bounds are looser than the drill's: near the threshold the limit probes
// above it now and then, and a 100-worker upstream needs exactly the
// 100-request ceiling.
func TestOverloadShapes(t *testing.T) {
	for _, tc := range []struct {
		name           string
		workers        int
		work           time.Duration
		shed, callers  int
		minGoodput     float64 // share of capacity
		maxFailedShare float64
	}{
		{"shed just above the workers", 16, 10 * time.Millisecond, 20, 200, 0.95, 0.01},
		{"shed at one above the workers", 16, 10 * time.Millisecond, 17, 200, 0.95, 0.02},
		{"small slow upstream", 4, 50 * time.Millisecond, 8, 200, 0.95, 0.25},
		{"large fast upstream", 64, 5 * time.Millisecond, 100, 300, 0.93, 0},
		{"as many workers as the ceiling", 100, 20 * time.Millisecond, 200, 300, 0.90, 0},
		{"few callers", 16, 10 * time.Millisecond, 48, 20, 0.97, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				up := newSimUpstream(tc.workers, tc.work, tc.shed)
				c, err := outbound.NewClient(outbound.DefaultConfig(), outbound.WithBase(up))
				if err != nil {
					t.Fatal(err)
				}
				run := runClosedLoop(c, "http://orders.internal/v1/orders/1", tc.callers, 8*time.Second, 2*time.Second)
				capacity := float64(tc.workers) * float64(time.Second) / float64(tc.work)
				goodput := run.goodput()
				t.Logf("goodput %.0f/s (%.1f %% of %.0f/s), %d calls, %d failed, %d arrivals, %d shed, p50 %v, p99 %v",
					goodput, 100*goodput/capacity, capacity, run.calls, run.failed, up.arrivals.Load(), up.shed.Load(), run.p50, run.p99)
				if goodput < tc.minGoodput*capacity {
					t.Errorf("goodput %.0f/s; want at least %.0f %% of %.0f/s", goodput, 100*tc.minGoodput, capacity)
				}
				if float64(run.failed) > tc.maxFailedShare*float64(run.calls) {
					t.Errorf("%d of %d calls failed; want at most %.0f %%: %v", run.failed, run.calls, 100*tc.maxFailedShare, run.failures)
				}
			})
		})
	}
}
