package hedge_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outboundhttp/outbound/internal/contracttest"
	"github.com/outboundhttp/outbound/transport/hedge"
)

// The suite runs on the default Transport (the quantile delay, which hedges
// nothing until it knows the upstream: every call passes through), on one
// whose hedge is armed for every call but not due (a minute), and on one
// that hedges after 10 ms, whose discard is a 503 that loses to its hedge.
func TestContract(t *testing.T) {
	never := []contracttest.Option{
		contracttest.NeverRefuses("hedge sends every request"),
		contracttest.NeverWaits("hedge sends the first attempt at once; its delay only schedules extra attempts"),
	}
	t.Run("Default", func(t *testing.T) {
		contracttest.Run(t, hedge.Middleware(), append(never,
			contracttest.NeverDiscards("nothing is hedged before the upstream's latency is known"))...)
	})
	t.Run("Armed", func(t *testing.T) {
		contracttest.Run(t, hedge.Middleware(hedge.WithDelay(time.Minute)), append(never,
			contracttest.NeverDiscards("the hedge is never due: every response is the first attempt's"))...)
	})
	t.Run("Hedging", func(t *testing.T) {
		contracttest.Run(t, hedge.Middleware(hedge.WithDelay(delay)), append(never,
			contracttest.Discards(losingFirst))...)
	})
}

// losingFirst builds a hedge Transport whose first attempt gets the suite's
// 503 and brings it back after the hedge went out, and whose hedge gets the
// suite's 200 and brings it back later still: the 503 is held while the
// hedge runs, then discarded.
func losingFirst(next http.RoundTripper) http.RoundTripper {
	var n atomic.Int32
	late := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		hold := 2 * delay // the first attempt: back after the hedge was sent
		if n.Add(1) > 1 {
			hold = 3 * delay // the hedge: back after the first attempt's 503
		}
		resp, err := next.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		t := time.NewTimer(hold)
		defer t.Stop()
		select {
		case <-t.C:
			return resp, nil
		case <-r.Context().Done():
			resp.Body.Close()
			return nil, r.Context().Err()
		}
	})
	return hedge.NewTransport(late, hedge.WithDelay(delay))
}
