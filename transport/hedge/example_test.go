package hedge_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/outboundhttp/outbound"
	"github.com/outboundhttp/outbound/transport/circuit"
	"github.com/outboundhttp/outbound/transport/hedge"
	"github.com/outboundhttp/outbound/transport/ratelimit"
	"github.com/outboundhttp/outbound/transport/retry"
)

// A server whose first answer hangs: the hedge, sent 20 ms later, answers,
// and the hung attempt is canceled.
func ExampleNewTransport() {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			<-r.Context().Done() // hangs until the client cancels it
			return
		}
		fmt.Fprintf(w, "answered by attempt %d", n.Load())
	}))
	defer srv.Close()

	client := &http.Client{Transport: hedge.NewTransport(nil, hedge.WithDelay(20*time.Millisecond))}
	defer client.CloseIdleConnections()
	resp, err := client.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(b))
	// Output: 200 answered by attempt 2
}

// In a stack, just below the retry layer, whose retry budget the hedges
// then spend, and above the breaker and the limits, which meter every hedge
// like any attempt. The delay is each upstream's recent 95th percentile
// latency (at most 4 medians), once 10 latencies of it are known.
func ExampleMiddleware() {
	client := outbound.Wrap(http.DefaultClient,
		retry.Middleware(),
		hedge.Middleware(),
		circuit.Middleware(),
		ratelimit.Middleware(ratelimit.WithAdaptiveConcurrency(4, 100)),
	)
	_ = client
}
