package tracing

import (
	"context"
	"maps"
	"net/http"
	"sync"
	"sync/atomic"

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
// know (whose name may be anything and must not reach the span name). Names
// with a route come from names, so the common case builds no string.
func spanName(req *http.Request, names *nameCache) string {
	m := methodAttr(req.Method).Value.AsString()
	if m == "_OTHER" {
		m = "HTTP"
	}
	if r, ok := callctx.Route(req.Context()); ok {
		return names.get(m, r)
	}
	return m
}

// maxNames bounds a nameCache. Routes are low-cardinality by contract; a
// caller that passes concrete paths anyway gets correct names, only uncached
// beyond the bound.
const maxNames = 1024

// nameCache remembers "{method} {route}" span names, so a call with a route
// does not concatenate the same string in both layers on every request. The
// zero value is ready to use; it is safe for concurrent use. Every call with
// a route reads it, so a read takes no lock (issue 18: no lock shared by
// every call): the map is never written once published, and a new name
// publishes a copy (routes are few, and each is added once).
type nameCache struct {
	names atomic.Pointer[map[[2]string]string]
	mu    sync.Mutex // serializes copies
}

func (c *nameCache) get(method, route string) string {
	k := [2]string{method, route}
	if m := c.names.Load(); m != nil {
		if n, ok := (*m)[k]; ok {
			return n
		}
	}
	n := method + " " + route
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.names.Load()
	if old != nil {
		if have, ok := (*old)[k]; ok {
			return have
		}
		if len(*old) >= maxNames {
			return n
		}
	}
	m := map[[2]string]string{}
	if old != nil {
		m = maps.Clone(*old)
	}
	m[k] = n
	c.names.Store(&m)
	return n
}
