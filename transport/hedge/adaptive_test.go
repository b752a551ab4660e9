package hedge_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/transport/circuit"
	"github.com/outboundhttp/outbound/transport/hedge"
	"github.com/outboundhttp/outbound/transport/ratelimit"
)

// TestCanceledLoserIsNoOverloadSignal: hedges pass through the adaptive
// concurrency limit below like any attempt, and a first attempt canceled
// because its hedge won does not lower the limit (it ends with
// context.Canceled, which the limit ignores). The control: first attempts
// that lose with a 503 are overload signals, and the limit falls.
func TestCanceledLoserIsNoOverloadSignal(t *testing.T) {
	for _, tc := range []struct {
		name     string
		first    answer
		wantFall bool
	}{
		{"canceled first attempts", answer{d: time.Hour, status: 200}, false},
		{"control: first attempts shed with 503", answer{d: 12 * time.Millisecond, status: 503}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake(func(_ int, r *http.Request) answer {
					if callctx.AttemptTypeOf(r.Context()) == callctx.AttemptHedge {
						return answer{d: 5 * time.Millisecond, status: 200}
					}
					return tc.first
				})
				var mu sync.Mutex
				lowest, windows := 1<<30, 0
				lim := ratelimit.NewTransport(f, ratelimit.WithAdaptiveConcurrency(4, 100),
					ratelimit.WithObserver(ratelimit.Observer{Concurrency: func(_ context.Context, _ string, s ratelimit.ConcurrencyStats) {
						mu.Lock()
						lowest, windows = min(lowest, s.Limit), windows+1
						mu.Unlock()
					}}))
				// A hedge for every call: the budget allows one per request.
				rt := hedge.NewTransport(lim, hedge.WithDelay(delay), hedge.WithBudget(1, 10*time.Second, 0))
				var wg sync.WaitGroup
				for range 8 {
					wg.Go(func() {
						for range 100 {
							resp, err := rt.RoundTrip(get(t, context.Background()))
							if err != nil {
								if !tc.wantFall {
									t.Error(err) // the control's limit falls: its queue may time out
								}
								return
							}
							readAll(t, resp)
						}
					})
				}
				wg.Wait()
				mu.Lock()
				defer mu.Unlock()
				t.Logf("%d windows, lowest limit %d", windows, lowest)
				if windows < 5 {
					t.Fatalf("the limit was recomputed %d times; want enough windows to tell", windows)
				}
				if fell := lowest < ratelimit.DefaultInitialConcurrency; fell != tc.wantFall {
					t.Errorf("lowest limit %d (initial %d): fell %v; want %v", lowest, ratelimit.DefaultInitialConcurrency, fell, tc.wantFall)
				}
				if n := len(f.seen()); !tc.wantFall && n != 1600 {
					t.Errorf("%d attempts for 800 calls; want every call hedged once, through the limit", n)
				}
			})
		})
	}
}

// TestCanceledLoserIsNoBreakerFailure: the breaker below counts hedges like
// any attempt, and a first attempt canceled because its hedge won is no
// failure of the upstream.
func TestCanceledLoserIsNoBreakerFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(func(_ int, r *http.Request) answer {
			if callctx.AttemptTypeOf(r.Context()) == callctx.AttemptHedge {
				return answer{d: time.Millisecond, status: 200}
			}
			return answer{d: time.Hour, status: 200}
		})
		var changes []string
		cb := circuit.NewTransport(f, circuit.WithMinRequests(5), circuit.WithFailureRatio(0.2),
			circuit.WithObserver(circuit.Observer{StateChange: func(_ string, from, to circuit.State) {
				changes = append(changes, from.String()+"->"+to.String())
			}}))
		rt := hedge.NewTransport(cb, hedge.WithDelay(delay), hedge.WithBudget(1, 10*time.Second, 0))
		for range 50 {
			resp, err := rt.RoundTrip(get(t, context.Background()))
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
		}
		if st := cb.State(key); st != circuit.Closed || len(changes) > 0 {
			t.Errorf("breaker %v after 50 hedged calls (changes %v); want closed: half the attempts were canceled losers, none failed", st, changes)
		}
	})
}
