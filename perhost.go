package outbound

import (
	"net"
	"net/http"
	"strings"
)

// PerHost returns a middleware that sends each request through the stack
// chosen for its upstream host, so one *http.Client can give each upstream
// its own limits and retry policy:
//
//	client := outbound.Wrap(base, outbound.PerHost(map[string]outbound.Middleware{
//		"payments.example.com": retry.Middleware(retry.WithMaxAttempts(2)),
//		"search.example.com:8443": ratelimit.Middleware(ratelimit.WithRate(20, 5)),
//	}, retry.Middleware()))
//
// Keys are matched against the request's host: first "host:port" exactly as
// in the URL, then the host name alone (case-insensitive). Requests to any
// other host use fallback; a nil fallback sends them to next unchanged.
//
// Each route's middleware is applied to next exactly once, when PerHost's
// result is applied, so every upstream gets its own Transport values and no
// limiter, breaker or retry budget is shared between routes by accident. The
// result forwards CloseIdleConnections to next.
func PerHost(routes map[string]Middleware, fallback Middleware) Middleware {
	// Copy so later changes to the caller's map have no effect.
	own := make(map[string]Middleware, len(routes))
	for k, mw := range routes {
		own[strings.ToLower(k)] = mw
	}
	return func(next http.RoundTripper) http.RoundTripper {
		if next == nil {
			next = http.DefaultTransport
		}
		r := &hostRouter{next: next, routes: make(map[string]http.RoundTripper, len(own)), fallback: next}
		for k, mw := range own {
			if mw == nil {
				r.routes[k] = next
			} else {
				r.routes[k] = mw(next)
			}
		}
		if fallback != nil {
			r.fallback = fallback(next)
		}
		return r
	}
}

type hostRouter struct {
	next     http.RoundTripper
	routes   map[string]http.RoundTripper
	fallback http.RoundTripper
}

func (r *hostRouter) RoundTrip(req *http.Request) (*http.Response, error) {
	return r.route(req).RoundTrip(req)
}

func (r *hostRouter) route(req *http.Request) http.RoundTripper {
	host := req.Host
	if req.URL != nil && req.URL.Host != "" {
		host = req.URL.Host
	}
	if len(r.routes) == 0 || host == "" {
		return r.fallback
	}
	if rt, ok := r.routes[host]; ok {
		return rt
	}
	lower := strings.ToLower(host)
	if rt, ok := r.routes[lower]; ok {
		return rt
	}
	if name, _, err := net.SplitHostPort(lower); err == nil {
		if rt, ok := r.routes[name]; ok {
			return rt
		}
	}
	return r.fallback
}

// CloseIdleConnections forwards to the RoundTripper PerHost wraps.
func (r *hostRouter) CloseIdleConnections() {
	if c, ok := r.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
