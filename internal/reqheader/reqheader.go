// Package reqheader gives a layer a copy of a request with one header set,
// for the layers that change a header per request or per attempt (request ID,
// remaining budget) and must never modify the caller's request.
package reqheader

import (
	"context"
	"net/http"
)

// With returns a shallow copy of req with context ctx and a copy of its
// header in which key (canonical form) is set to value. It is
// http.Request.Clone cut down to what changes: the URL, body and the rest
// stay shared (no layer may modify them), and the header values are copied
// into one backing array with room for value, as http.Header.Clone does —
// three allocations in all (the request, the map, the values) instead of
// Clone's dozen for a typical request.
func With(req *http.Request, ctx context.Context, key, value string) *http.Request {
	r2 := req.WithContext(ctx)
	nv := 1
	for k, vv := range req.Header {
		if k != key {
			nv += len(vv)
		}
	}
	sv := make([]string, nv)
	h := make(http.Header, len(req.Header)+1)
	for k, vv := range req.Header {
		if k == key {
			continue // replaced below
		}
		if vv == nil {
			h[k] = nil // a nil slice stays nil, as Header.Clone keeps it
			continue
		}
		n := copy(sv, vv)
		h[k] = sv[:n:n]
		sv = sv[n:]
	}
	sv[0] = value
	h[key] = sv[:1:1]
	r2.Header = h
	return r2
}
