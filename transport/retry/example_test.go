package retry_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/outboundhttp/outbound/internal/contracttest"
	"github.com/outboundhttp/outbound/transport/retry"
)

// flaky answers 503 to the first n requests, then 200.
func flaky(n int32) *httptest.Server {
	var seen atomic.Int32
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen.Add(1) <= n {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "hello")
	}))
}

func ExampleNewTransport() {
	srv := flaky(2)
	defer srv.Close()

	client := &http.Client{Transport: retry.NewTransport(nil,
		retry.WithBackoff(time.Millisecond, 10*time.Millisecond), // short waits for the example
	)}
	resp, err := client.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	fmt.Println(resp.Status)
	// Output: 200 OK
}

func ExampleWithObserver() {
	srv := flaky(2)
	defer srv.Close()

	client := &http.Client{Transport: retry.NewTransport(nil,
		retry.WithBackoff(time.Millisecond, 10*time.Millisecond),
		retry.WithObserver(retry.Observer{
			Retry: func(_ context.Context, ri retry.RetryInfo) {
				fmt.Printf("attempt %d failed (%s), retrying\n", ri.Attempt, ri.Reason)
			},
		}),
	)}
	resp, err := client.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	// Output:
	// attempt 0 failed (status_503), retrying
	// attempt 1 failed (status_503), retrying
	// 200 OK
}

// A POST without an Idempotency-Key is sent once; the caller gets the 503.
func ExampleTransport_RoundTrip_idempotency() {
	srv := flaky(1)
	defer srv.Close()

	client := &http.Client{Transport: retry.NewTransport(nil)}
	resp, err := client.Post(srv.URL, "text/plain", strings.NewReader("pay 10 EUR"))
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println("POST:", resp.Status)

	srv2 := flaky(1)
	defer srv2.Close()
	req, _ := http.NewRequest(http.MethodPost, srv2.URL, strings.NewReader("pay 10 EUR"))
	req.Header.Set("Idempotency-Key", "payment-8e03978e")
	client = &http.Client{Transport: retry.NewTransport(nil, retry.WithBackoff(time.Millisecond, time.Millisecond))}
	resp, err = client.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println("POST with Idempotency-Key:", resp.Status)
	// Output:
	// POST: 503 Service Unavailable
	// POST with Idempotency-Key: 200 OK
}

// Existing go-retryablehttp policies plug in unchanged.
func ExampleWithCheckRetry() {
	var seen atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen.Add(1) == 1 {
			w.WriteHeader(http.StatusInternalServerError) // retried by DefaultRetryPolicy
		}
	}))
	defer srv.Close()

	client := &http.Client{Transport: retry.NewTransport(nil,
		retry.WithCheckRetry(retryablehttp.DefaultRetryPolicy),
		retry.WithBackoffFunc(retryablehttp.DefaultBackoff),
		retry.WithBackoff(time.Millisecond, 10*time.Millisecond), // min and max for DefaultBackoff
	)}
	resp, err := client.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.Status, "after", seen.Load(), "attempts")
	// Output: 200 OK after 2 attempts
}

// Layers inside the retry Transport see the attempt number in the context.
func ExampleAttempt() {
	srv := flaky(1)
	defer srv.Close()

	inner := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		fmt.Println("sending attempt", retry.Attempt(r.Context()))
		return http.DefaultTransport.RoundTrip(r)
	})
	client := &http.Client{Transport: retry.NewTransport(inner, retry.WithBackoff(time.Millisecond, time.Millisecond))}
	resp, err := client.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	// Output:
	// sending attempt 0
	// sending attempt 1
}

// A wait that would end after the deadline is not started: the caller gets
// the 429 at once instead of sleeping for an hour.
func ExampleWithMaxRetryAfter() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	client := &http.Client{Transport: retry.NewTransport(nil, retry.WithMaxRetryAfter(time.Minute))}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.Status, "at once:", time.Since(start) < time.Second)
	// Output: 429 Too Many Requests at once: true
}
