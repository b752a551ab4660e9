package hedge_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/transport/hedge"
)

const key = "http://api.test:80"

// callNumbered returns a GET whose X-Call header numbers the call, so that
// a script can tell calls apart (hedges carry the caller's headers).
func callNumbered(t *testing.T, n int) *http.Request {
	req := get(t, context.Background())
	req.Header.Set("X-Call", strconv.Itoa(n))
	return req
}

func callOf(r *http.Request) int {
	n, _ := strconv.Atoi(r.Header.Get("X-Call"))
	return n
}

// stragglers answers a first attempt in 5 ms, except every 20th call from
// call 20 on, which takes 100 ms; a hedge takes 5 ms. From call slowFrom on
// (when it is positive), every attempt takes 100 ms.
func stragglers(slowFrom int) func(int, *http.Request) answer {
	return func(_ int, r *http.Request) answer {
		n := callOf(r)
		switch {
		case slowFrom > 0 && n >= slowFrom:
			return answer{d: 100 * time.Millisecond, status: 200}
		case callctx.AttemptTypeOf(r.Context()) == callctx.AttemptHedge:
			return answer{d: 5 * time.Millisecond, status: 200}
		case n >= 20 && n%20 == 19:
			return answer{d: 100 * time.Millisecond, status: 200}
		}
		return answer{d: 5 * time.Millisecond, status: 200}
	}
}

// TestQuantileDelay: with the default (q = 0.95), nothing is hedged until
// DefaultMinSamples latencies are known; then the delay is the upstream's p95 (95 % of
// first attempts at 5 ms, 5 % at 100 ms: just above 5 ms), which hedges the
// slow 5 % and nothing else, and stays there while hedges win (the first
// attempts they beat count with the time they had run). It follows the
// upstream when it slows down, and is forgotten when nothing came for two
// windows.
func TestQuantileDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(stragglers(0))
		rt := hedge.NewTransport(f)
		call := func(n int) time.Duration {
			start := time.Now()
			resp, err := rt.RoundTrip(callNumbered(t, n))
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
			return time.Since(start)
		}
		const warm = hedge.DefaultMinSamples
		for n := range warm - 1 {
			call(n)
			if d, ok := rt.Delay(key); ok {
				t.Fatalf("after %d latencies the delay is known (%v); want it unknown before %d", n+1, d, hedge.DefaultMinSamples)
			}
		}
		for n := warm - 1; n < 20; n++ {
			call(n)
		}
		if d, ok := rt.Delay(key); !ok || d < 5*time.Millisecond || d > 5100*time.Microsecond {
			t.Fatalf("after 20 latencies of 5 ms: delay %v, %v; want just above 5ms", d, ok)
		}
		if n := len(f.seen()); n != 20 {
			t.Fatalf("%d attempts for 20 fast calls; want no hedge", n)
		}

		var slow []time.Duration
		for n := 20; n < 420; n++ {
			if d := call(n); n%20 == 19 {
				slow = append(slow, d)
			} else if d != 5*time.Millisecond {
				t.Fatalf("call %d (fast) took %v; want 5ms", n, d)
			}
		}
		d, ok := rt.Delay(key)
		t.Logf("delay after 400 calls, 5 %% of them slow: %v", d)
		if !ok || d < 5*time.Millisecond || d > 6*time.Millisecond {
			t.Errorf("delay %v, %v; want 5-6 ms (the p95)", d, ok)
		}
		for _, s := range slow {
			if s > 12*time.Millisecond {
				t.Errorf("a slow call took %v; want it cut by a hedge to about 10ms", s)
			}
		}
		if extra := len(f.seen()) - 420; extra != len(slow) {
			t.Errorf("%d hedges for %d slow calls in 400; want one each, no more", extra, len(slow))
		}

		// The upstream slows down for good: the delay follows, capped at
		// MaxDelayMedians times the median until the slow latencies are the
		// median too (while the budget pays for hedges that lose to the
		// first attempts).
		f.setScript(stragglers(420))
		for n := 420; n < 520; n++ {
			call(n)
		}
		if d, ok := rt.Delay(key); !ok || d < 4*5*time.Millisecond || d > 4*5100*time.Microsecond {
			t.Errorf("after 100 slow calls: delay %v, %v; want 4 medians of 5 ms, about 20ms", d, ok)
		}
		for n := 520; n < 1000; n++ {
			call(n)
		}
		if d, ok := rt.Delay(key); !ok || d < 90*time.Millisecond {
			t.Errorf("after 580 slow calls: delay %v, %v; want about 100ms", d, ok)
		}
		time.Sleep(2 * hedge.DefaultLatencyWindow)
		if d, ok := rt.Delay(key); ok {
			t.Errorf("after two quiet windows the delay is still %v; want it forgotten", d)
		}
	})
}

// TestDelayIsTheFloor: WithDelay with WithQuantile is the floor under the
// quantile.
func TestDelayIsTheFloor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(stragglers(0))
		for _, opts := range [][]hedge.Option{
			{hedge.WithQuantile(0.9), hedge.WithDelay(20 * time.Millisecond)},
			{hedge.WithDelay(20 * time.Millisecond), hedge.WithQuantile(0.9)},
		} {
			rt := hedge.NewTransport(f, opts...)
			for n := range 30 {
				resp, err := rt.RoundTrip(callNumbered(t, n))
				if err != nil {
					t.Fatal(err)
				}
				readAll(t, resp)
			}
			if d, ok := rt.Delay(key); !ok || d != 20*time.Millisecond {
				t.Errorf("delay %v, %v; want the floor, 20ms", d, ok)
			}
		}
		fixed := hedge.NewTransport(f, hedge.WithDelay(7*time.Millisecond))
		if d, ok := fixed.Delay("any"); !ok || d != 7*time.Millisecond {
			t.Errorf("fixed delay: %v, %v; want 7ms for any key", d, ok)
		}
	})
}
