package hedge_test

import (
	"context"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outboundhttp/outbound/transport/hedge"
)

// straggler is an upstream where each attempt, whatever it is, is slow with
// probability 1/20: 200 ms instead of fast(), which is 5 ms, or lognormal
// around 5 ms.
type straggler struct {
	mu   sync.Mutex
	rng  *rand.Rand
	fast func(*rand.Rand) time.Duration
}

func (s *straggler) latency() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rng.IntN(20) == 0 {
		return 200 * time.Millisecond
	}
	return s.fast(s.rng)
}

func fixed5ms(*rand.Rand) time.Duration { return 5 * time.Millisecond }

// lognormal5ms is lognormal with median 5 ms and σ = 0.25 (p99 about 9 ms).
func lognormal5ms(r *rand.Rand) time.Duration {
	return time.Duration(5e6 * math.Exp(0.25*r.NormFloat64()))
}

type figures struct {
	p50, p99, p999 time.Duration
	extra          float64 // extra upstream requests, as a share of calls
}

// runStragglers sends 8 callers × 250 calls through wrap(upstream), in a
// synctest bubble, and returns the latency quantiles and the extra requests.
func runStragglers(t *testing.T, fast func(*rand.Rand) time.Duration, wrap func(http.RoundTripper) http.RoundTripper) figures {
	var fig figures
	synctest.Test(t, func(t *testing.T) {
		up := &straggler{rng: rand.New(rand.NewPCG(1, 2)), fast: fast}
		f := newFake(func(int, *http.Request) answer { return answer{d: up.latency(), status: 200} })
		rt := wrap(f)
		const callers, calls = 8, 250
		var mu sync.Mutex
		var lat []time.Duration
		var wg sync.WaitGroup
		for range callers {
			wg.Go(func() {
				for range calls {
					start := time.Now()
					resp, err := rt.RoundTrip(get(t, context.Background()))
					if err != nil {
						t.Error(err)
						return
					}
					readAll(t, resp)
					d := time.Since(start)
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		slices.Sort(lat)
		q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
		fig = figures{q(0.5), q(0.99), q(0.999), float64(len(f.seen())-len(lat)) / float64(len(lat))}
	})
	return fig
}

// TestStragglers is the sanity check at unit level: 1 request in 20
// takes 200 ms instead of 5 ms, 8 callers. Unhedged, the p99 is the
// straggler's 200 ms; hedged after a fixed 15 ms, about 20 ms for about 5 %
// more requests. The default (the quantile) is measured on the same
// upstream and on one whose fast requests spread lognormally around 5 ms.
func TestStragglers(t *testing.T) {
	none := func(next http.RoundTripper) http.RoundTripper { return next }
	fixed := hedge.Middleware(hedge.WithDelay(15 * time.Millisecond))
	quantile := hedge.Middleware()
	for _, tc := range []struct {
		name       string
		fast       func(*rand.Rand) time.Duration
		wrap       func(http.RoundTripper) http.RoundTripper
		maxP99     time.Duration
		minP99     time.Duration
		maxExtra   float64
		wantHedged bool
	}{
		{"5ms/unhedged", fixed5ms, none, 0, 190 * time.Millisecond, 0, false},
		{"5ms/fixed 15ms", fixed5ms, fixed, 25 * time.Millisecond, 0, 0.07, true},
		{"5ms/quantile default", fixed5ms, quantile, 25 * time.Millisecond, 0, 0.10, true},
		{"lognormal/unhedged", lognormal5ms, none, 0, 190 * time.Millisecond, 0, false},
		{"lognormal/fixed 15ms", lognormal5ms, fixed, 30 * time.Millisecond, 0, 0.10, true},
		{"lognormal/quantile default", lognormal5ms, quantile, 100 * time.Millisecond, 0, 0.15, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fig := runStragglers(t, tc.fast, tc.wrap)
			t.Logf("p50 %v  p99 %v  p99.9 %v  extra requests %.1f %%", fig.p50, fig.p99, fig.p999, 100*fig.extra)
			if tc.maxP99 > 0 && fig.p99 > tc.maxP99 {
				t.Errorf("p99 %v; want at most %v", fig.p99, tc.maxP99)
			}
			if fig.p99 < tc.minP99 {
				t.Errorf("p99 %v; want at least %v (the stragglers)", fig.p99, tc.minP99)
			}
			if tc.wantHedged && (fig.extra <= 0.02 || fig.extra > tc.maxExtra) {
				t.Errorf("extra requests %.1f %%; want above 2 %% and at most %.0f %%", 100*fig.extra, 100*tc.maxExtra)
			}
		})
	}
}
