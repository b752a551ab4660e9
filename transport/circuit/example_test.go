package circuit_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/outboundhttp/outbound"
	"github.com/outboundhttp/outbound/transport/circuit"
	"github.com/outboundhttp/outbound/transport/retry"
)

// A breaker under a retry layer: the first call retries a failing upstream
// until the breaker opens and gets the last 503 it saw; the next call fails at
// once without reaching the upstream, and retry does not retry the refusal.
func Example_withRetry() {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()

	client := outbound.Wrap(http.DefaultClient,
		retry.Middleware(retry.WithMaxAttempts(4), retry.WithBackoff(0, time.Millisecond)),
		circuit.Middleware(circuit.WithMinRequests(3), circuit.WithBreakDuration(time.Minute)),
	)
	defer client.CloseIdleConnections()

	for i := 1; i <= 2; i++ {
		resp, err := client.Get(srv.URL)
		var open *circuit.OpenError
		switch {
		case errors.As(err, &open):
			fmt.Printf("call %d: refused, breaker %v, next probe within a minute: %v\n",
				i, open.State, open.RetryIn > 59*time.Second)
		case err != nil:
			fmt.Printf("call %d: %v\n", i, err)
		default:
			resp.Body.Close()
			fmt.Printf("call %d: %d\n", i, resp.StatusCode)
		}
		fmt.Printf("upstream saw %d requests\n", hits.Load())
	}
	// Output:
	// call 1: 503
	// upstream saw 3 requests
	// call 2: refused, breaker open, next probe within a minute: true
	// upstream saw 3 requests
}
