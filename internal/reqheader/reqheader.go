// Package reqheader is the one way a layer copies a request to change its
// header: the layers that set a header per call or per attempt (request ID,
// remaining budget, User-Agent and credentials, attempt number, idempotency
// key) never modify the caller's request, and all make the same small copy.
package reqheader

import (
	"context"
	"net/http"
)

// Field is one header field to set: Key in canonical form, and its values.
// Values is stored in the copy as given (capacity clipped), so a layer can
// build it once and share it between requests; nothing may write into it.
type Field struct {
	Key    string
	Values []string
}

// Copy returns a shallow copy of req with context ctx and a new header map
// in which every field of fields is set (replacing the caller's values of
// that key) and every other key of req.Header is kept.
//
// It is http.Request.Clone cut down to what changes. The URL, body and the
// rest of the request stay shared, as Request.WithContext shares them and
// the whole header map: no layer may modify a request it was given
// (http.RoundTripper's contract). The value slices of the other keys are
// shared too, with their capacity clipped, so Add, Set or Del on the copy
// never reach the caller's arrays. Only the request and the map are
// allocated — two or three allocations, against Clone's dozen for a
// typical request — plus whatever the caller allocated for fields.
func Copy(req *http.Request, ctx context.Context, fields ...Field) *http.Request {
	r2 := req.WithContext(ctx)
	h := make(http.Header, len(req.Header)+len(fields))
	for k, vv := range req.Header {
		h[k] = vv[:len(vv):len(vv)] // a nil slice stays nil, as Header.Clone keeps it
	}
	for _, f := range fields {
		h[f.Key] = f.Values[:len(f.Values):len(f.Values)]
	}
	r2.Header = h
	return r2
}

// With returns Copy(req, ctx, Field{key, []string{value}}): a copy with one
// header set to one value.
func With(req *http.Request, ctx context.Context, key, value string) *http.Request {
	return Copy(req, ctx, Field{key, []string{value}})
}
