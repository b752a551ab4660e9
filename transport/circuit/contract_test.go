package circuit_test

import (
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/outboundhttp/outbound/internal/contracttest"
	"github.com/outboundhttp/outbound/transport/circuit"
)

func TestContract(t *testing.T) {
	contracttest.Run(t, circuit.Middleware(),
		contracttest.Refuses(openBreaker),
		contracttest.NeverWaits("circuit answers at once, open or closed"),
		contracttest.NeverDiscards("circuit hands on every response"),
	)
}

// openBreaker returns a Transport whose breaker for contracttest.URL is
// open: one failed attempt, of a minimum of one, trips it.
func openBreaker(next http.RoundTripper) http.RoundTripper {
	var down atomic.Bool
	down.Store(true)
	tr := circuit.NewTransport(contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		if down.Load() {
			return nil, errors.New("connection refused")
		}
		return next.RoundTrip(r)
	}), circuit.WithMinRequests(1))
	req, err := http.NewRequest(http.MethodGet, contracttest.URL, nil)
	if err != nil {
		panic(err)
	}
	if _, err := tr.RoundTrip(req); err == nil {
		panic("the priming request did not fail")
	}
	down.Store(false)
	if got := tr.State("http://contract.test:80"); got != circuit.Open {
		panic("breaker " + got.String() + " after a failure; want open")
	}
	return tr
}
