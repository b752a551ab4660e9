package outbound

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/outboundhttp/outbound/transport/budget"
	"github.com/outboundhttp/outbound/transport/circuit"
	"github.com/outboundhttp/outbound/transport/ratelimit"
)

// StatusClientClosedRequest is the status StatusFor gives when the caller's
// own context was canceled: the caller is gone, and no upstream is to blame
// (nginx's 499, so dashboards do not count it as a server error).
const StatusClientClosedRequest = 499

// StatusFor maps the outcome of an outbound call to the status a service
// should answer its own caller with, so upstream failures keep clear semantics
// for front ends and incident tooling (the reference article answers 502):
//
//   - nil: 200.
//   - budget exhaustion, context.DeadlineExceeded and any other timeout: 504
//     Gateway Timeout.
//   - a rate-limit refusal (ratelimit.ErrLimited) or an open breaker
//     (circuit.ErrOpen): 503 Service Unavailable; RetryAfterFor gives the hint.
//   - a *StatusError (the upstream answered, with a failure status): 502 Bad
//     Gateway, whatever the upstream's status — its 4xx are this service's
//     problem, not its caller's, and its 503 is not this service's capacity.
//   - context.Canceled: 499 (StatusClientClosedRequest).
//   - any other error (connection refused or reset, TLS, malformed response): 502.
//
// It uses errors.Is and errors.As, so wrapped errors map the same way.
func StatusFor(err error) int {
	if err == nil {
		return http.StatusOK
	}
	switch {
	case errors.Is(err, ratelimit.ErrLimited), errors.Is(err, circuit.ErrOpen):
		return http.StatusServiceUnavailable
	case errors.Is(err, budget.ErrExhausted), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		return StatusClientClosedRequest
	}
	var se *StatusError
	if errors.As(err, &se) {
		return http.StatusBadGateway
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// RetryAfterFor returns how long a service's caller should wait before trying
// again, when err says: the time until an open breaker's next probe, the wait
// a rate limit suggests, or the Retry-After of an upstream's *StatusError.
// Use it to set Retry-After (whole seconds, rounded up) on a 503.
func RetryAfterFor(err error) (time.Duration, bool) {
	var oe *circuit.OpenError
	if errors.As(err, &oe) && oe.RetryIn > 0 {
		return oe.RetryIn, true
	}
	var le *ratelimit.LimitError
	if errors.As(err, &le) && le.RetryAfter > 0 {
		return le.RetryAfter, true
	}
	var se *StatusError
	if errors.As(err, &se) && se.HasRetryAfter {
		return se.RetryAfter, true
	}
	return 0, false
}
