// Package outbound makes outbound HTTP calls fast, polite and visible when
// upstreams fail, as a set of composable http.RoundTripper middlewares: request
// IDs, a total time budget, jittered retries, rate and concurrency limits,
// circuit breaking and OpenTelemetry telemetry, each in its own package under
// transport/, layered onto any *http.Client by Chain or Wrap.
//
// The shortest correct use:
//
//	client := outbound.Wrap(http.DefaultClient,
//		requestid.Middleware(),
//		budget.Middleware(budget.WithTotal(10*time.Second)),
//		retry.Middleware(),
//	)
//
// NewClient builds the whole recommended stack from a Config.
package outbound

import "net/http"

// Middleware wraps a RoundTripper in another. It is an alias, not a defined
// type, so the concern packages can return it without importing this package.
type Middleware = func(http.RoundTripper) http.RoundTripper

// Chain layers mw onto base. The first middleware is the outermost: a request
// passes mw[0], then mw[1], ..., then base (as gRPC's interceptor chaining and
// chi's middleware stack do). A nil base means http.DefaultTransport; nil
// middlewares are skipped; with no middleware Chain returns base itself.
func Chain(base http.RoundTripper, mw ...Middleware) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	rt := base
	for i := len(mw) - 1; i >= 0; i-- {
		if mw[i] != nil {
			rt = mw[i](rt)
		}
	}
	return rt
}

// Wrap returns a new client whose Transport is Chain(c.Transport, mw...). The
// new client keeps c's Timeout, Jar and CheckRedirect; c itself is never
// modified. A nil c means a zero http.Client (http.DefaultTransport, no timeout).
func Wrap(c *http.Client, mw ...Middleware) *http.Client {
	var nc http.Client
	if c != nil {
		nc = http.Client{
			Transport:     c.Transport,
			CheckRedirect: c.CheckRedirect,
			Jar:           c.Jar,
			Timeout:       c.Timeout,
		}
	}
	nc.Transport = Chain(nc.Transport, mw...)
	return &nc
}

// RoundTripperFunc adapts an ordinary function to http.RoundTripper. The
// function must keep the RoundTripper contract: a response or an error, never
// both, and never a modified request.
type RoundTripperFunc func(*http.Request) (*http.Response, error)

// RoundTrip calls f(req).
func (f RoundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
