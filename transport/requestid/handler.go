package requestid

import (
	"net/http"

	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/internal/reqheader"
)

// Handler returns an http.Handler that gives every inbound request a request
// ID, then calls next. A well-formed inbound ID (see Valid) is kept, so one ID
// follows a call across services; a missing or malformed one — empty, longer
// than MaxLen, repeated, or holding bytes outside the safe set (CR/LF, spaces,
// control bytes, non-ASCII) — is replaced by a fresh ID from the generator
// and never echoed, so a client cannot inject headers or log lines through it.
//
// The ID is put in the request context (FromContext) and in the response
// header. A replaced value is also replaced in the request header seen by next
// (on a copy of the header; the inbound request is not modified); when the
// header was absent, next sees no header and reads the ID from the context.
// Outbound calls made with the request's context through Transport carry the
// same ID. Handler accepts the same options as Transport; WithSpanAttribute
// records the ID on the server span an outer otelhttp handler started.
func Handler(next http.Handler, opts ...Option) http.Handler {
	cfg := newConfig(opts)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		vv := r.Header[cfg.header]
		var id string
		if len(vv) == 1 && Valid(vv[0]) {
			id = vv[0]
		} else {
			id = cfg.newID()
		}
		w.Header()[cfg.header] = []string{id}
		ctx := callctx.WithRequestID(r.Context(), id)
		if cfg.span {
			setSpanAttr(ctx, cfg.spanAttr, id)
		}
		if len(vv) == 0 || len(vv) == 1 && vv[0] == id {
			next.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		// A malformed inbound value was replaced: next must not see it either
		// (it may copy inbound headers into logs or outbound calls).
		next.ServeHTTP(w, reqheader.With(r, ctx, cfg.header, id))
	})
}

// Valid reports whether id is acceptable as an inbound request ID: 1 to
// MaxLen bytes, each an ASCII letter, digit or one of "-._:/+=". The set
// covers UUIDs, ULIDs, base64 and prefixed forms ("svc:1234"), and excludes
// everything that could split a header or a log line or confuse a log parser
// (CR, LF, spaces, quotes, control and non-ASCII bytes).
func Valid(id string) bool {
	if len(id) == 0 || len(id) > MaxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !safeByte(id[i]) {
			return false
		}
	}
	return true
}

// safeByte reports whether c is in the set Valid accepts. A switch rather
// than a lookup table keeps the package free of package-level variables.
func safeByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', ':', '/', '+', '=':
		return true
	}
	return false
}
