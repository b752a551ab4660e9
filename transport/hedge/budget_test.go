package hedge_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/transport/budget"
	"github.com/outboundhttp/outbound/transport/hedge"
	"github.com/outboundhttp/outbound/transport/retry"
)

// TestEmptyBudgetSuppressesNewHedgesOnly: when the budget is spent, the
// hedge that was due is not sent (and the call says so), and no attempt in
// flight is canceled for it (failsafe-go #141 cancels them).
func TestEmptyBudgetSuppressesNewHedgesOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// One hedge per 10 s window, whatever the traffic.
		f := newFake(byIndex(answer{d: 100 * time.Millisecond, status: 200}, answer{d: time.Hour, status: 200}))
		rt := hedge.NewTransport(f, hedge.WithDelay(delay), hedge.WithMaxHedges(2), hedge.WithBudget(0, 10*time.Second, 0.1))
		rec := &events{}
		start := time.Now()
		resp, err := rt.RoundTrip(get(t, callctx.WithRecorder(context.Background(), rec)))
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Errorf("RoundTrip took %v; want the first attempt's 100ms", d)
		}
		if got := readAll(t, resp); got != "answer 0" {
			t.Errorf("body %q; want the first attempt's", got)
		}
		calls := f.seen()
		if len(calls) != 2 {
			t.Fatalf("%d attempts; want the first and one hedge (the second was over budget)", len(calls))
		}
		<-calls[1].ended
		if !errors.Is(context.Cause(calls[1].ctx), context.Canceled) {
			t.Errorf("the hedge in flight ended with %v; want it canceled only once the first attempt won", context.Cause(calls[1].ctx))
		}
		sup := rec.of(callctx.KindHedgeSuppressed)
		if len(sup) != 1 || sup[0].Reason != "budget" || sup[0].Attempt != 2 {
			t.Errorf("hedge_suppressed events %+v; want one, attempt 2, reason budget", sup)
		}

		// The window's hedge is spent: the next slow call is not hedged.
		f.setScript(byIndex(answer{d: 50 * time.Millisecond, status: 200}))
		resp, err = rt.RoundTrip(get(t, context.Background()))
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		if n := len(f.seen()); n != 3 {
			t.Errorf("%d attempts after a second call; want 3 (no hedge)", n)
		}
	})
}

// TestSharedBudgetWithRetry: below a retry layer, hedges spend the retry
// budget: retries and hedges together stay within it, although the hedge
// layer's own budget would allow many more hedges, and hedges take only the
// spare half of it, so the other half is left to retries even when hedges
// came first.
func TestSharedBudgetWithRetry(t *testing.T) {
	t.Run("retry alone", func(t *testing.T) { testSharedBudgetWithRetry(t, false) })
	// Under a budget layer the retry layer's request context is the call's
	// own (callctx.Call), which carries the budget instead of a context of
	// the retry layer's.
	t.Run("under a budget layer", func(t *testing.T) { testSharedBudgetWithRetry(t, true) })
}

func testSharedBudgetWithRetry(t *testing.T, underBudget bool) {
	synctest.Test(t, func(t *testing.T) {
		// Calls 0-3 are slow on their first attempt (a hedge wins if one is
		// sent); calls 4-6 get a 503 on every attempt.
		f := newFake(func(_ int, r *http.Request) answer {
			n := callOf(r)
			switch {
			case n >= 4:
				return answer{status: 503}
			case callctx.AttemptTypeOf(r.Context()) == callctx.AttemptHedge:
				return answer{d: time.Millisecond, status: 200}
			}
			return answer{d: 100 * time.Millisecond, status: 200}
		})
		h := hedge.NewTransport(f, hedge.WithDelay(delay))
		// A floor of 4 resends per 10 s and no ratio: 4 in all, 2 for hedges.
		var refused []string
		rt := retry.NewTransport(h, retry.WithRetryBudget(0, 10*time.Second, 0.4),
			retry.WithObserver(retry.Observer{Retry: func(_ context.Context, i retry.RetryInfo) {
				if i.Refused != "" {
					refused = append(refused, i.Refused)
				}
			}}))
		var top http.RoundTripper = rt
		if underBudget {
			top = budget.NewTransport(rt, budget.WithTotal(time.Hour))
		}
		for n := range 7 {
			resp, err := top.RoundTrip(callNumbered(t, n))
			if err != nil {
				t.Fatalf("call %d: %v", n, err)
			}
			readAll(t, resp)
		}
		var hedges, retries int
		for _, c := range f.seen() {
			switch c.typ {
			case callctx.AttemptHedge:
				hedges++
			case callctx.AttemptRetry:
				retries++
			}
		}
		// The hedge layer's own budget (a floor of 30) would have hedged
		// calls 2 and 3 too, and the whole retry budget would have left
		// call 4 no retry.
		if hedges != 2 || retries != 2 {
			t.Errorf("%d hedges and %d retries; want the budget's 4 resends, half to hedges (calls 0 and 1), half to retries", hedges, retries)
		}
		if len(refused) != 3 || refused[0] != "budget" {
			t.Errorf("retries refused: %v; want 3, for the budget", refused)
		}
	})
}

// TestAttemptTypesUnderRetry: a retry's attempt is "retry", a hedge of it
// "hedge".
func TestAttemptTypesUnderRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(byIndex(
			answer{status: 503},                       // attempt 0: retried
			answer{d: time.Hour, status: 200},         // attempt 1: slow, hedged
			answer{d: time.Millisecond, status: 200})) // its hedge wins
		rt := retry.NewTransport(hedge.NewTransport(f, hedge.WithDelay(delay)))
		resp, err := rt.RoundTrip(get(t, context.Background()))
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		var got []string
		var numbers []int
		for _, c := range f.seen() {
			got = append(got, c.typ.String())
			numbers = append(numbers, callctx.Attempt(c.ctx))
		}
		want := []string{"original", "retry", "hedge"}
		if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
			t.Errorf("attempt types %v; want %v", got, want)
		}
		if numbers[1] != 1 || numbers[2] != 1 {
			t.Errorf("attempt numbers %v; want the hedge to keep its retry's number, 1", numbers)
		}
	})
}
