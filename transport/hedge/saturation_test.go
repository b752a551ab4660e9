package hedge_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/transport/hedge"
	"github.com/outboundhttp/outbound/transport/ratelimit"
)

// TestNoHedgeToASaturatedUpstream: a hedge is not sent while the upstream
// has no room, as the rate-limit layer below tells: every slot of its
// concurrency limit taken (adaptive), or callers queued for one (fixed). It is counted as suppressed, reason "saturated", and
// spends no budget. The control, with room for the hedges, sends them.
func TestNoHedgeToASaturatedUpstream(t *testing.T) {
	for _, tc := range []struct {
		name     string
		limit    []ratelimit.Option
		callers  int
		wantSent int // the others are suppressed
	}{
		{"adaptive limit full", []ratelimit.Option{ratelimit.WithAdaptiveConcurrency(2, 2)}, 2, 0},
		// The third call gets its slot when the first two answer: its
		// hedge then finds one free.
		{"fixed limit with a queue", []ratelimit.Option{ratelimit.WithConcurrency(2)}, 3, 1},
		{"control: room for the hedges", []ratelimit.Option{ratelimit.WithAdaptiveConcurrency(4, 4)}, 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake(func(i int, r *http.Request) answer {
					if callctx.AttemptTypeOf(r.Context()) == callctx.AttemptHedge {
						return answer{d: time.Millisecond, status: 200}
					}
					return answer{d: 50 * time.Millisecond, status: 200}
				})
				rt := hedge.NewTransport(ratelimit.NewTransport(f, tc.limit...),
					hedge.WithDelay(delay), hedge.WithBudget(1, 10*time.Second, 0))
				ev := &events{}
				ctx := callctx.WithRecorder(context.Background(), ev)
				var wg sync.WaitGroup
				for range tc.callers {
					wg.Go(func() {
						resp, err := rt.RoundTrip(get(t, ctx))
						if err != nil {
							t.Error(err)
							return
						}
						readAll(t, resp)
					})
				}
				wg.Wait()
				sent, supp := ev.of(callctx.KindHedge), ev.of(callctx.KindHedgeSuppressed)
				if len(sent) != tc.wantSent || len(supp) != tc.callers-tc.wantSent {
					t.Errorf("%d hedges sent, %d suppressed for %d slow calls; want %d sent, the others suppressed",
						len(sent), len(supp), tc.callers, tc.wantSent)
				}
				for _, e := range supp {
					if e.Reason != "saturated" {
						t.Errorf("suppressed for %q; want saturated", e.Reason)
					}
				}
			})
		})
	}
}
