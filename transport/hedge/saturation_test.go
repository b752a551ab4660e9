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

// pushbackBase answers the first request 429 with Retry-After: 1, then first
// attempts after 50 ms and hedges after 1 ms, all 200.
type pushbackBase struct {
	mu sync.Mutex
	n  int
}

func (p *pushbackBase) RoundTrip(r *http.Request) (*http.Response, error) {
	p.mu.Lock()
	p.n++
	first := p.n == 1
	p.mu.Unlock()
	resp := &http.Response{StatusCode: 200, Body: http.NoBody, Header: http.Header{}, Request: r}
	d := 50 * time.Millisecond
	switch {
	case first:
		resp.StatusCode, d = http.StatusTooManyRequests, 0
		resp.Header.Set("Retry-After", "1")
	case callctx.AttemptTypeOf(r.Context()) == callctx.AttemptHedge:
		d = time.Millisecond
	}
	select {
	case <-time.After(d):
		return resp, nil
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
}

// TestNoHedgeJustAfterAPause: for ratelimit.PauseAftermath after a pause the
// upstream asked for has ended, the calls it held go out without hedges (a
// hedge would double the wave they make, and could reach the upstream after
// it paused the same call again); after that, slow calls are hedged again.
func TestNoHedgeJustAfterAPause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := hedge.NewTransport(ratelimit.NewTransport(&pushbackBase{}),
			hedge.WithDelay(delay), hedge.WithBudget(1, 10*time.Second, 10))
		call := func() (sent, supp int) {
			ev := &events{}
			resp, err := rt.RoundTrip(get(t, callctx.WithRecorder(context.Background(), ev)))
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
			return len(ev.of(callctx.KindHedge)), len(ev.of(callctx.KindHedgeSuppressed))
		}
		call() // the 429: a pause of 1 s
		time.Sleep(time.Second + 100*time.Millisecond)
		if sent, supp := call(); sent != 0 || supp != 1 {
			t.Errorf("0.1 s after the pause: %d hedges sent, %d suppressed; want none sent, one suppressed", sent, supp)
		}
		time.Sleep(ratelimit.PauseAftermath)
		if sent, supp := call(); sent != 1 || supp != 0 {
			t.Errorf("after the aftermath: %d hedges sent, %d suppressed; want one sent", sent, supp)
		}
	})
}
