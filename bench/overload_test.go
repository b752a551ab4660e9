package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/outboundhttp/outbound"
	"github.com/outboundhttp/outbound/transport/base"
	"github.com/outboundhttp/outbound/transport/chaos"
)

// The overload drill of cmd/outbound-chaos (-scenario overload) with its
// default settings: 200 callers, each making call after call for 4 s with a
// deadline of 2 s per call, against an upstream of 16 workers × 10 ms (1 600
// calls/s) that answers 503 at once when 48 requests are in flight.
const (
	overloadWorkers   = 16
	overloadWork      = 10 * time.Millisecond
	overloadShedAbove = 48
	overloadCallers   = 200
	overloadDuration  = 4 * time.Second
	overloadDeadline  = 2 * time.Second
)

// raceEnabled is set when the tests are built with -race (race_test.go), so
// the drill can say that its figures are the race detector's.
var raceEnabled bool

// overloadCapacity is the upstream's capacity in calls per second.
const overloadCapacity = float64(overloadWorkers) / float64(overloadWork) * float64(time.Second)

// overloadClient is one row of the overload comparison: build returns the
// client and a function that closes its idle connections.
type overloadClient struct {
	name  string
	build func() (*http.Client, func())
}

// onBase returns a client of the RoundTripper that wrap puts on a fresh
// base.New (100 connections and 100 idle per host, as outbound's
// own), so every peer meets the upstream through the same pool as outbound.
func onBase(wrap func(http.RoundTripper) http.RoundTripper) func() (*http.Client, func()) {
	return func() (*http.Client, func()) {
		baseRT := base.New()
		return &http.Client{Transport: wrap(baseRT)}, baseRT.(interface{ CloseIdleConnections() }).CloseIdleConnections
	}
}

// overloadClients are the clients compared: a bare http.Client; go-retryablehttp
// as stacks.go builds it; outbound.NewClient(outbound.DefaultConfig()) exactly,
// with its own base transport and tracing on through the global (no-op)
// providers; and failsafehttp with its retry policy outermost around an
// adaptive concurrency limiter, or around a client-side throttler (stacks.go).
func overloadClients() []overloadClient {
	return []overloadClient{
		{"bare http.Client", onBase(func(b http.RoundTripper) http.RoundTripper { return b })},
		{"go-retryablehttp", onBase(RetryableHTTP)},
		{"outbound", func() (*http.Client, func()) {
			c, err := outbound.NewClient(outbound.DefaultConfig())
			if err != nil {
				panic(err) // DefaultConfig is valid
			}
			return c, c.CloseIdleConnections
		}},
		{"failsafe retry+adaptivelimiter", onBase(FailsafeLimited)},
		{"failsafe retry+adaptivethrottler", onBase(FailsafeThrottled)},
	}
}

// overloadResult is one row of the overload table.
type overloadResult struct {
	calls, ok int
	// good counts the successful calls that ended within the duration.
	good int
	// upstream counts the requests the upstream received, shed those it
	// answered 503.
	upstream, shed int
	p50, p99       time.Duration
}

func (r overloadResult) goodput() float64 { return float64(r.good) / overloadDuration.Seconds() }
func (r overloadResult) failed() int      { return r.calls - r.ok }

// runOverload plays the drill against a fresh chaos.Server on loopback with
// the client built by build: a closed loop, where a call that fails fast is
// followed by the next at once.
func runOverload(build func() (*http.Client, func())) overloadResult {
	srv := chaos.NewServer(chaos.Scenario{Name: "overload", Faults: []chaos.Fault{
		chaos.Capacity(overloadWorkers, overloadWork, overloadShedAbove),
	}})
	url, err := srv.Start()
	if err != nil {
		panic(err)
	}
	c, closeIdle := build()
	type call struct {
		latency time.Duration
		ok      bool
		end     time.Time
	}
	calls := make([][]call, overloadCallers) // per caller: nothing shared
	start := time.Now()
	end := start.Add(overloadDuration)
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() {
			for n := 0; time.Now().Before(end); n++ {
				ctx, cancel := context.WithTimeout(context.Background(), overloadDeadline)
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/orders/"+itoa(n), nil)
				t0 := time.Now()
				resp, err := c.Do(req)
				ok := false
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					ok = err == nil && resp.StatusCode == http.StatusOK
				}
				t1 := time.Now()
				cancel()
				calls[i] = append(calls[i], call{t1.Sub(t0), ok, t1})
			}
		})
	}
	wg.Wait()
	closeIdle()
	srv.Close() // waits for the handlers, so every request is recorded

	var res overloadResult
	var lats []time.Duration
	for _, cc := range calls {
		for _, k := range cc {
			res.calls++
			lats = append(lats, k.latency)
			if k.ok {
				res.ok++
				if !k.end.After(end) {
					res.good++
				}
			}
		}
	}
	for _, r := range srv.Records() {
		res.upstream++
		if r.Status == http.StatusServiceUnavailable {
			res.shed++
		}
	}
	slices.Sort(lats)
	res.p50 = lats[len(lats)/2]
	res.p99 = lats[len(lats)*99/100]
	return res
}

// TestOverloadPeers plays the overload drill against each client in turn and
// prints goodput (successful calls per second), failed calls, the 503s the
// upstream answered and the latency of every call, failed ones included. The
// clients run one after another: each keeps the CPU busy by itself, and side
// by side they would take it from one another. It checks outbound's targets
// (goodput at least 95 % of capacity and at least failsafe's adaptive
// limiter's, at most 0.5 % of calls failed, at most 1 % of the upstream's
// requests shed, p99 at most the adaptive limiter's) and logs a miss: the
// stack is a moving target while its layers change (see targetMissed). It
// takes about 25 s; -short skips it.
func TestOverloadPeers(t *testing.T) {
	if testing.Short() {
		t.Skip("real-time closed-loop drill; run without -short")
	}
	if raceEnabled {
		t.Log("built with -race: the clients are CPU-bound, so goodput and latencies are of the race detector more than of the clients")
	}
	clients := overloadClients()
	results := make(map[string]overloadResult, len(clients))
	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "client\tgoodput/s\tof %.0f/s\tcalls\tfailed\tupstream req\tupstream 503s\tp50\tp99\t\n", overloadCapacity)
	for _, c := range clients {
		r := runOverload(c.build)
		results[c.name] = r
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f %%\t%d\t%d (%.1f %%)\t%d\t%d (%.1f %%)\t%s\t%s\t\n", c.name,
			r.goodput(), 100*r.goodput()/overloadCapacity, r.calls, r.failed(), pct(r.failed(), r.calls),
			r.upstream, r.shed, pct(r.shed, r.upstream), ms(r.p50), ms(r.p99))
	}
	tw.Flush()
	t.Logf("overload: %d callers, call after call for %v, %v deadline each; upstream of %d workers × %v (%.0f calls/s), 503 at once when %d in flight\n%s",
		overloadCallers, overloadDuration, overloadDeadline, overloadWorkers, overloadWork, overloadCapacity, overloadShedAbove, table.String())

	ob, fl := results["outbound"], results["failsafe retry+adaptivelimiter"]
	if g := ob.goodput(); g < 0.95*overloadCapacity {
		targetMissed(t, "overload: outbound goodput %.0f/s is %.1f %% of the upstream's capacity (want >= 95 %%)", g, 100*g/overloadCapacity)
	}
	if ob.goodput() < fl.goodput() {
		targetMissed(t, "overload: outbound goodput %.0f/s < failsafe adaptivelimiter's %.0f/s", ob.goodput(), fl.goodput())
	}
	if p := pct(ob.failed(), ob.calls); p > 0.5 {
		targetMissed(t, "overload: outbound failed %d of %d calls (%.2f %%; want <= 0.5 %%)", ob.failed(), ob.calls, p)
	}
	if p := pct(ob.shed, ob.upstream); p > 1 {
		targetMissed(t, "overload: the upstream shed %d of outbound's %d requests (%.2f %%; want <= 1 %%)", ob.shed, ob.upstream, p)
	}
	if ob.p99 > fl.p99 {
		targetMissed(t, "overload: outbound p99 %v > failsafe adaptivelimiter's %v", ms(ob.p99), ms(fl.p99))
	}
}

// pct is n as a percentage of of (0 when of is 0).
func pct(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}
