package chaos_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/outboundhttp/outbound/internal/contracttest"
	"github.com/outboundhttp/outbound/transport/chaos"
)

// A unit test of a client stack: the chaos Transport sits where the real
// transport would, in front of an in-memory upstream, and plays a 429 burst.
func ExampleNewTransport() {
	upstream := http.RoundTripper(contracttest.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Status: "200 OK", Header: http.Header{},
			Body: http.NoBody, Request: req}, nil
	}))
	client := &http.Client{Transport: chaos.NewTransport(upstream,
		chaos.WithSeed(1),
		chaos.WithFaults(chaos.Burst(2, time.Second)),
	)}
	for range 3 {
		resp, err := client.Get("http://api.example/v1/items")
		if err != nil {
			fmt.Println(err)
			continue
		}
		resp.Body.Close()
		fmt.Println(resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Output:
	// 429 1
	// 429 1
	// 200
}

// An injected reset looks like a real one to error classifiers.
func ExampleConnReset() {
	client := &http.Client{Transport: chaos.NewTransport(nil, chaos.WithFaults(chaos.ConnReset()))}
	_, err := client.Get("http://api.example/")
	fmt.Println(errors.Is(err, syscall.ECONNRESET))
	// Output: true
}

// An end-to-end drill: a flaky upstream on loopback, a client that retries
// everything (including POST) at once, and the recording that shows what it
// cost the upstream.
func ExampleServer() {
	srv := chaos.NewServer(chaos.Scenario{Name: "resets", Seed: 1, Faults: []chaos.Fault{
		chaos.ConnReset().Times(2),
	}})
	url, err := srv.Start()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	const calls = 3
	for i := range calls {
		id := "call-" + strconv.Itoa(i)
		for attempt := range 4 { // a naive retry loop: no backoff, retries POST
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, url+"/orders", nil)
			req.Header.Set("X-Request-ID", id)
			req.Header.Set("X-Attempt", strconv.Itoa(attempt))
			resp, err := client.Do(req)
			if err != nil {
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			break
		}
	}
	rep := chaos.Analyze(srv.Records(), calls)
	fmt.Printf("requests=%d amplification=%.2f resets=%d duplicates=%d\n",
		rep.Requests, rep.Amplification, rep.Answers["reset"], rep.DuplicateDeliveries)
	for _, r := range srv.Records()[:3] {
		fmt.Println(r.RequestID, r.Attempt, r.Fault)
	}
	// Output:
	// requests=5 amplification=1.67 resets=2 duplicates=2
	// call-0 0 reset
	// call-0 1 reset
	// call-0 2 none
}

// An upstream of fixed capacity: one worker, a place in flight for two
// requests, so a third that arrives while two are in flight is shed at once
// with 503. The two in flight end when their callers give up.
func ExampleCapacity() {
	upstream := http.RoundTripper(contracttest.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Status: "200 OK", Header: http.Header{},
			Body: http.NoBody, Request: req}, nil
	}))
	tr := chaos.NewTransport(upstream, chaos.WithFaults(chaos.Capacity(1, time.Hour, 2)))
	client := &http.Client{Transport: tr}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://api.example/v1/report", nil)
			_, err := client.Do(req)
			errs <- err
		}()
	}
	for tr.Stats().Requests < 2 { // both taken in: one worked, one queued
		runtime.Gosched()
	}
	resp, err := client.Get("http://api.example/v1/report")
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println("third call:", resp.Status)
	cancel()
	fmt.Println("first two:", errors.Is(<-errs, context.Canceled), errors.Is(<-errs, context.Canceled))
	st := tr.Stats()
	fmt.Printf("requests %d, shed %d\n", st.Requests, st.Fired[chaos.KindCapacity])
	// Output:
	// third call: 503 Service Unavailable
	// first two: true true
	// requests 3, shed 1
}
