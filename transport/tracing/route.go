package tracing

import (
	"context"
	"net/http"

	"github.com/outboundhttp/outbound/internal/callctx"
)

// WithRoute returns a copy of ctx carrying a low-cardinality route template
// such as "/v1/users/{id}". Spans of requests sent with that context are named
// "{method} {route}" ("GET /v1/users/{id}") instead of "{method}", and attempt
// spans get the url.template attribute, as the HTTP semantic conventions
// recommend. Never pass the concrete path: a name per user ID makes span
// names unbounded.
func WithRoute(ctx context.Context, route string) context.Context {
	return callctx.WithRoute(ctx, route)
}

// spanName follows the HTTP client span name convention: "{method}" or
// "{method} {url.template}", with "HTTP" for a method the conventions do not
// know (whose name may be anything and must not reach the span name).
func spanName(req *http.Request) string {
	m := methodAttr(req.Method).Value.AsString()
	if m == "_OTHER" {
		m = "HTTP"
	}
	if r, ok := callctx.Route(req.Context()); ok {
		return m + " " + r
	}
	return m
}
