package contracttest

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/outboundhttp/outbound/internal/callctx"
)

// The fakes below are shared by the packages' own tests, so that each is
// written once: a function as a RoundTripper, a recorder of the events the
// layers emit, and the settable upstream that the breaker tests drive.

// RoundTripFunc adapts a function to http.RoundTripper, for fakes.
type RoundTripFunc func(*http.Request) (*http.Response, error)

// RoundTrip calls f(r).
func (f RoundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Recorder is a callctx.Recorder that keeps every event, in order. Put it in
// a request's context with callctx.WithRecorder. Its zero value is ready to
// use; it is safe for concurrent use.
type Recorder struct {
	mu  sync.Mutex
	evs []callctx.Event
}

// Record keeps ev.
func (r *Recorder) Record(_ context.Context, ev callctx.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
}

// Events returns a copy of the events recorded so far.
func (r *Recorder) Events() []callctx.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]callctx.Event(nil), r.evs...)
}

// Gate is a fake upstream whose answer the test changes as it goes, for
// breaker tests: trip with 503s, then hold the probe at a channel, then let
// it through. It answers request i with status i of its list (the last one
// repeated), after holding the request at the hold channel, when one is set,
// until the channel is closed or the request's context ends (then it returns
// the context's error, as net/http's Transport does). Like net/http's
// Transport it reads and closes every request body; each response has the
// body "ok". It counts the requests that reach it and keeps their headers.
// Safe for concurrent use.
type Gate struct {
	mu      sync.Mutex
	status  []int
	hold    chan struct{}
	headers []http.Header
}

// NewGate returns a Gate answering with statuses, in order, the last one
// repeated; with none, 200.
func NewGate(statuses ...int) *Gate {
	if len(statuses) == 0 {
		statuses = []int{http.StatusOK}
	}
	return &Gate{status: statuses}
}

// Set makes every later request answered with status, after holding it at
// hold when hold is not nil.
func (g *Gate) Set(status int, hold chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.status, g.hold = []int{status}, hold
}

// Calls returns the number of requests that reached g.
func (g *Gate) Calls() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.headers)
}

// Header returns the value of the named header on every request that
// reached g, in order ("" where it was absent).
func (g *Gate) Header(name string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	vs := make([]string, len(g.headers))
	for i, h := range g.headers {
		vs[i] = h.Get(name)
	}
	return vs
}

// RoundTrip answers r as the doc of Gate says.
func (g *Gate) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	g.mu.Lock()
	i := len(g.headers)
	g.headers = append(g.headers, r.Header.Clone())
	status, hold := g.status[min(i, len(g.status)-1)], g.hold
	g.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	return &http.Response{StatusCode: status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("ok")), Request: r}, nil
}
