package budget

import (
	"context"
	"net/http"
	"time"
)

// Handler returns an http.Handler that reads the remaining budget a client
// sent (Request-Timeout-Ms by default, see PropagateTransport) and gives the
// request context that deadline before calling next, so outbound calls made
// with r.Context() share the caller's shrinking budget.
//
// The value is bounded by WithMaxInbound (default: the total budget, 10 s):
// a larger one is lowered to it. A value that is not 1 to 10 ASCII digits —
// negative, fractional, exponent forms like 1e30, text, overlong, or a
// repeated header — is ignored and the request keeps the deadline it had:
// the header is never trusted. An earlier deadline already on the request's
// context is kept (context deadlines only shrink).
//
// The deadline counts as a budget: an outbound call through Transport that
// runs into it fails with ErrExhausted. Its timer is released when next
// returns.
func Handler(next http.Handler, opts ...Option) http.Handler {
	cfg := newConfig(opts)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, ok := parseMillis(r.Header[cfg.header])
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		d = min(d, cfg.maxInbound)
		ctx, cancel := context.WithDeadlineCause(r.Context(), time.Now().Add(d), &ExhaustedError{Budget: d, cause: true})
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// parseMillis parses the inbound budget header: exactly one value of 1 to
// maxHeaderDigits ASCII digits. Everything else is rejected rather than
// repaired, since the value comes from the network.
func parseMillis(vv []string) (time.Duration, bool) {
	if len(vv) != 1 {
		return 0, false
	}
	v := vv[0]
	if len(v) == 0 || len(v) > maxHeaderDigits {
		return 0, false
	}
	var ms int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		ms = ms*10 + int64(c-'0')
	}
	return time.Duration(ms) * time.Millisecond, true
}
