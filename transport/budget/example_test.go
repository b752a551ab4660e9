package budget_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/outboundhttp/outbound"
	"github.com/outboundhttp/outbound/transport/budget"
	"github.com/outboundhttp/outbound/transport/retry"
)

// A 10-second budget around retries: every attempt and every backoff wait
// fits in one budget, and each attempt tells the upstream how long it has.
func Example() {
	var calls atomic.Int32
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.Header.Get("Request-Timeout-Ms"))
		fmt.Printf("attempt %d: upstream has a budget below 10s: %v\n", calls.Add(1), ms > 0 && ms < 10000)
		if calls.Load() < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer upstream.Close()

	client := outbound.Wrap(http.DefaultClient,
		budget.Middleware(budget.WithTotal(10*time.Second)), // outside retry: one budget for all attempts
		retry.Middleware(retry.WithMaxAttempts(4), retry.WithBackoff(time.Millisecond, 10*time.Millisecond)),
		budget.DeadlineMiddleware(), // inside retry: recomputed per attempt
	)
	defer client.CloseIdleConnections()

	resp, err := client.Get(upstream.URL)
	if errors.Is(err, budget.ErrExhausted) {
		fmt.Println("budget exhausted")
		return
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println("status:", resp.StatusCode)
	// Output:
	// attempt 1: upstream has a budget below 10s: true
	// attempt 2: upstream has a budget below 10s: true
	// attempt 3: upstream has a budget below 10s: true
	// status: 200
}

// A server honours the budget its callers send: the request context gets the
// deadline, and outbound calls made with it share the shrinking budget.
func ExampleHandler() {
	h := budget.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		left, ok := budget.Remaining(r.Context())
		fmt.Println("deadline:", ok, "at most 1.5s left:", left <= 1500*time.Millisecond && left > time.Second)
	}), budget.WithMaxInbound(5*time.Second))

	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Request-Timeout-Ms", "1500")
	h.ServeHTTP(httptest.NewRecorder(), r)

	r.Header.Set("Request-Timeout-Ms", "1e30") // not trusted: ignored
	h.ServeHTTP(httptest.NewRecorder(), r)
	// Output:
	// deadline: true at most 1.5s left: true
	// deadline: false at most 1.5s left: false
}

// Telling a spent budget apart from a caller that gave up.
func ExampleErrExhausted() {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer slow.Close()
	client := &http.Client{Transport: budget.NewTransport(nil, budget.WithTotal(50*time.Millisecond))}
	defer client.CloseIdleConnections()

	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, slow.URL, nil)
	_, err := client.Do(req)
	switch {
	case errors.Is(err, budget.ErrExhausted):
		fmt.Println("our budget ran out; deadline exceeded too:", errors.Is(err, context.DeadlineExceeded))
	case errors.Is(err, context.Canceled):
		fmt.Println("the caller canceled")
	}
	// Output: our budget ran out; deadline exceeded too: true
}
