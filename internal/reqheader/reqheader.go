// Package reqheader is the one way a layer copies a request to change its
// header: the layers that set a header per call or per attempt (request ID,
// remaining budget, User-Agent and credentials, attempt number, idempotency
// key) never modify the caller's request, and all make the same small copy.
package reqheader

import (
	"context"
	"maps"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
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
	var h http.Header
	if n := len(req.Header); n > 0 && n+len(fields) <= smallMap {
		// A map that stays small (one group of eight slots) is cloned whole,
		// without hashing its keys again; only the value slices with room
		// past their length are clipped (Header.Set makes them full). Past
		// eight keys the copy would grow the clone's table, where building
		// it at its size is cheaper (BenchmarkCopy).
		h = maps.Clone(req.Header)
		for k, vv := range h {
			if cap(vv) != len(vv) {
				h[k] = vv[:len(vv):len(vv)]
			}
		}
	} else {
		h = make(http.Header, len(req.Header)+len(fields))
		for k, vv := range req.Header {
			h[k] = vv[:len(vv):len(vv)] // a nil slice stays nil, as Header.Clone keeps it
		}
	}
	for _, f := range fields {
		h[f.Key] = f.Values[:len(f.Values):len(f.Values)]
	}
	r2.Header = h
	return r2
}

// smallMap is the most keys a Go map holds in its one group of slots
// before it grows a table (internal/runtime/maps: abi.MapGroupSlots).
const smallMap = 8

// With returns Copy(req, ctx, Field{key, []string{value}}): a copy with one
// header set to one value.
func With(req *http.Request, ctx context.Context, key, value string) *http.Request {
	return Copy(req, ctx, Field{key, []string{value}})
}

// Preset returns the header fields that next, the RoundTripper below a
// layer, sets on every request that lacks them, when next says so by a
// method PresetHeaders() http.Header (transport/header's Transport, and
// every layer that passes headers through unchanged forwarding its own
// next's), or nil. A layer that copies the request's header anyway (the
// request-ID layer) sets these fields on its copy too, where the caller's
// request lacks them, so that the layer below finds them present and sends
// the request on without a copy of its own: one header map per call instead
// of one per layer. What goes on the wire is the same. A layer between that
// does not forward the method ends the search, so nothing is preset across
// a middleware that might change the header.
func Preset(next any) http.Header {
	p, ok := next.(interface{ PresetHeaders() http.Header })
	if !ok {
		return nil
	}
	return p.PresetHeaders()
}

// Without returns h without the given keys (canonicalized), for a layer
// that forwards Preset to leave out the fields it reads or sets itself: a
// field preset above it would be seen by it, which the layer below setting
// the field would not have allowed (a static Idempotency-Key would make the
// retry layer retry a POST). h is not modified.
func Without(h http.Header, keys ...string) http.Header {
	var out http.Header
	for _, k := range keys {
		if k == "" {
			continue
		}
		k = textproto.CanonicalMIMEHeaderKey(k)
		if _, ok := h[k]; !ok {
			continue
		}
		if out == nil {
			out = h.Clone()
		}
		delete(out, k)
	}
	if out == nil {
		return h
	}
	return out
}

// Missing appends to dst the fields of preset that req's header lacks, in
// the order of preset, and returns dst.
func Missing(dst []Field, preset []Field, req *http.Request) []Field {
	for _, f := range preset {
		if _, ok := req.Header[f.Key]; !ok {
			dst = append(dst, f)
		}
	}
	return dst
}

// Fields returns h as fields sorted by key, sharing h's value slices, for a
// layer to keep and pass to Copy.
func Fields(h http.Header) []Field {
	if len(h) == 0 {
		return nil
	}
	fs := make([]Field, 0, len(h))
	for k, vv := range h {
		fs = append(fs, Field{Key: k, Values: vv})
	}
	slices.SortFunc(fs, func(a, b Field) int { return strings.Compare(a.Key, b.Key) })
	return fs
}
