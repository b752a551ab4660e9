package main

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/outboundhttp/outbound/transport/tracing"
)

// clientSpec is one of the clients compared in every scenario.
type clientSpec struct {
	name  string // short name, used in JSON and request IDs
	label string // column label of the scorecard
	build func(e clientEnv) (caller, error)
}

// clientEnv is what a client is built with.
type clientEnv struct {
	budget  time.Duration    // total time per call (the bare client's timeout)
	seed    int64            // seeds any client-side randomness
	tracing []tracing.Option // outbound's telemetry providers; none: the global ones
	// idempotencyKeys turns outbound's IdempotencyKeys on (for an upstream
	// that honours them); the other clients send no keys.
	idempotencyKeys bool
}

// caller is a built client: do makes one logical call and reads the whole
// response body; close releases the client's idle connections.
type caller struct {
	// do sends req (whose context bounds the call) and reads the answer to
	// the end. It returns the final status (0 without a response) and an
	// error when the call failed: no response, a status that is not 2xx, or
	// a body that could not be read.
	do    func(req *http.Request) (int, error)
	close func()
}

// allClients returns the clients in scorecard order.
func allClients() []clientSpec {
	return []clientSpec{
		{name: "bare", label: "bare http.Client", build: bareClient},
		{name: "retryablehttp", label: "go-retryablehttp", build: retryablehttpClient},
		{name: "article", label: "article policy", build: articleClient},
		{name: "outbound", label: "outbound", build: outboundCaller},
	}
}

// statusError is a call that ended with a response that is not 2xx.
type statusError struct{ code int }

func (e statusError) Error() string { return fmt.Sprintf("status %d", e.code) }

// finish reads resp's body to the end and closes it, as a caller that uses
// the answer does (a stalled body fails the call only if it is read).
func finish(resp *http.Response) (int, error) {
	_, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return resp.StatusCode, fmt.Errorf("reading body: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, statusError{resp.StatusCode}
	}
	return resp.StatusCode, nil
}

// httpCaller is the caller of an *http.Client: Do, then the whole body.
func httpCaller(hc *http.Client) caller {
	return caller{
		do: func(req *http.Request) (int, error) {
			resp, err := hc.Do(req)
			if err != nil {
				return 0, err
			}
			return finish(resp)
		},
		close: hc.CloseIdleConnections,
	}
}

// newStdTransport returns a private copy of http.DefaultTransport, so each
// client has its own connection pool.
func newStdTransport() *http.Transport {
	return http.DefaultTransport.(*http.Transport).Clone()
}

// bareClient is what most code does: one attempt, http.Client.Timeout set to
// the budget.
func bareClient(e clientEnv) (caller, error) {
	hc := &http.Client{Timeout: e.budget, Transport: newStdTransport()}
	return httpCaller(hc), nil
}

// retryablehttpClient is hashicorp/go-retryablehttp with its defaults (up to
// 4 retries, exponential backoff from 1 s to 30 s, Retry-After honoured on
// 429 and 503, no timeout), except the logger, which would write every
// attempt to stderr. After its last attempt it returns an error, not the
// last response.
func retryablehttpClient(e clientEnv) (caller, error) {
	c := retryablehttp.NewClient()
	c.Logger = nil
	return caller{
		do: func(req *http.Request) (int, error) {
			rreq, err := retryablehttp.FromRequest(req)
			if err != nil {
				return 0, err
			}
			resp, err := c.Do(rreq)
			if err != nil {
				return 0, err
			}
			return finish(resp)
		},
		close: c.HTTPClient.CloseIdleConnections,
	}, nil
}
