package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/outboundhttp/outbound/transport/ratelimit"
)

// Rate and concurrency limits per upstream: at most 1 request per second
// (bursts of 2) and 4 in flight. A request whose wait for a token would pass
// its deadline fails at once with ErrLimited instead of sleeping.
func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	}))
	defer srv.Close()

	client := &http.Client{Transport: ratelimit.NewTransport(srv.Client().Transport,
		ratelimit.WithRate(1, 2),
		ratelimit.WithConcurrency(4),
	)}
	defer client.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	for i := range 3 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		resp, err := client.Do(req)
		var le *ratelimit.LimitError
		switch {
		case errors.As(err, &le):
			fmt.Printf("request %d: refused by the %s limit (retry in about %v)\n", i, le.Reason, le.RetryAfter.Round(time.Second))
		case err != nil:
			fmt.Println(err)
		default:
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close() // releases the concurrency slot
			fmt.Printf("request %d: %s\n", i, b)
		}
	}
	// Output:
	// request 0: hello
	// request 1: hello
	// request 2: refused by the rate limit (retry in about 1s)
}

// An adaptive concurrency limit per upstream: it starts at 20 (within the
// bounds given), then follows the upstream's latency and its 429/503 answers
// between 4 and 100. Concurrency reads its state, for dashboards.
func ExampleWithAdaptiveConcurrency() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	}))
	defer srv.Close()

	tr := ratelimit.NewTransport(srv.Client().Transport, ratelimit.WithAdaptiveConcurrency(4, 100))
	client := &http.Client{Transport: tr}
	defer client.CloseIdleConnections()

	resp, err := client.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	s, ok := tr.Concurrency(srv.URL)
	fmt.Println(ok, s.Adaptive, s.Limit, s.InFlight)
	// Output: true true 20 0
}
