package sdk_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/outboundhttp/outbound"
	"github.com/outboundhttp/outbound/examples/sdk"
	"github.com/outboundhttp/outbound/examples/sdk/usersapi"
)

// flaky is a Users API that answers 503 to its first two requests.
func flaky() (*httptest.Server, *atomic.Int32) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"42","name":"Ada Lovelace"}`)
	}))
	return srv, &calls
}

// A generated client gets the whole standard stack from its WithHTTPClient
// option: the two 503s are retried, with one request ID, inside the budget.
func Example() {
	srv, calls := flaky()
	defer srv.Close()

	cfg := outbound.DefaultConfig()
	cfg.BackoffInitial, cfg.BackoffMax = 5*time.Millisecond, 20*time.Millisecond // a fast example
	cfg.TracingEnabled = false
	hc, err := outbound.NewClient(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer hc.CloseIdleConnections()

	api, err := usersapi.NewClientWithResponses(srv.URL, usersapi.WithHTTPClient(hc)) // the one line
	if err != nil {
		log.Fatal(err)
	}
	resp, err := api.GetUserWithResponse(context.Background(), "42")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.StatusCode(), resp.JSON200.Name)
	fmt.Println("attempts:", calls.Load())
	// Output:
	// 200 Ada Lovelace
	// attempts: 3
}

// A failure that outlasts the retries comes back as a *outbound.StatusError,
// which a service maps to its own answer with outbound.StatusFor.
func ExampleClient_GetUser() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()

	cfg := outbound.DefaultConfig()
	cfg.BackoffInitial, cfg.BackoffMax = 5*time.Millisecond, 20*time.Millisecond
	cfg.TracingEnabled = false
	c, err := sdk.New(srv.URL, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseIdleConnections()

	_, err = c.GetUser(context.Background(), "42")
	fmt.Println("answer the caller:", outbound.StatusFor(err))
	// Output:
	// answer the caller: 502
}
