package budget

import (
	"net/http"
	"strconv"
	"time"

	"github.com/outboundhttp/outbound/internal/body"
	"github.com/outboundhttp/outbound/internal/idle"
	"github.com/outboundhttp/outbound/internal/reqheader"
)

// DeadlineTransport is an http.RoundTripper that sends the time left before
// the request context's deadline, minus a safety margin, in a header
// (Request-Timeout-Ms by default) as whole milliseconds: relative, never a
// wall-clock time, so clock skew between hosts does not matter (as gRPC's
// grpc-timeout and Envoy's x-envoy-expected-rq-timeout-ms). Handler on the
// upstream turns it back into a deadline.
//
// Place it inside the retry layer (after retry.Middleware in a Chain), so
// each attempt recomputes the value: a resend carries less time than the
// first attempt did. A request without a deadline goes out without the
// header. A header the caller set explicitly is sent unchanged: the caller's
// value wins. A remaining time below the margin is sent as 0.
//
// A DeadlineTransport is safe for concurrent use and holds no per-request
// resources. Its zero value is not usable: build one with NewDeadlineTransport.
type DeadlineTransport struct {
	next   http.RoundTripper
	header string
	margin time.Duration
}

var _ http.RoundTripper = (*DeadlineTransport)(nil)

// NewDeadlineTransport returns a DeadlineTransport that passes requests to
// next (nil means http.DefaultTransport). It uses the options
// WithDeadlineHeader and WithSafetyMargin.
func NewDeadlineTransport(next http.RoundTripper, opts ...Option) *DeadlineTransport {
	return newPropagate(next, newConfig(opts))
}

// DeadlineMiddleware returns a middleware for outbound.Chain that wraps its
// argument in a DeadlineTransport. Place it inside (after) retry.
func DeadlineMiddleware(opts ...Option) func(http.RoundTripper) http.RoundTripper {
	cfg := newConfig(opts)
	return func(next http.RoundTripper) http.RoundTripper { return newPropagate(next, cfg) }
}

// PropagateTransport is the former name of DeadlineTransport.
//
// Deprecated: use DeadlineTransport; one concept, deadline propagation, has
// one name (LayerDeadline, Config.DeadlineHeader, WithDeadlineHeader).
type PropagateTransport = DeadlineTransport

// NewPropagateTransport is the former name of NewDeadlineTransport.
//
// Deprecated: use NewDeadlineTransport.
func NewPropagateTransport(next http.RoundTripper, opts ...Option) *DeadlineTransport {
	return NewDeadlineTransport(next, opts...)
}

// PropagateMiddleware is the former name of DeadlineMiddleware.
//
// Deprecated: use DeadlineMiddleware.
func PropagateMiddleware(opts ...Option) func(http.RoundTripper) http.RoundTripper {
	return DeadlineMiddleware(opts...)
}

func newPropagate(next http.RoundTripper, cfg config) *DeadlineTransport {
	if next == nil {
		next = http.DefaultTransport
	}
	return &DeadlineTransport{next: next, header: cfg.header, margin: cfg.margin}
}

// RoundTrip implements http.RoundTripper. It never modifies req: the header
// is set on a copy.
func (p *DeadlineTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	dl, ok := req.Context().Deadline()
	if !ok {
		return p.send(req)
	}
	if _, set := req.Header[p.header]; set {
		return p.send(req)
	}
	// Milliseconds() truncates, which only rounds the sent budget down.
	ms := max((time.Until(dl) - p.margin).Milliseconds(), 0)
	return p.send(reqheader.With(req, req.Context(), p.header, strconv.FormatInt(ms, 10)))
}

func (p *DeadlineTransport) send(req *http.Request) (*http.Response, error) {
	resp, err := p.next.RoundTrip(req)
	return body.Checked(resp, err, "budget")
}

// CloseIdleConnections forwards to the wrapped RoundTripper when it has the method.
func (p *DeadlineTransport) CloseIdleConnections() { idle.Close(p.next) }

// PresetHeaders forwards what the RoundTripper below reports
// (internal/reqheader.Preset): the header fields a layer below sets on every
// request that lacks them. This layer's copy keeps every field but its own,
// so a request-ID layer above may set them on the copy it makes anyway.
// Callers need not use the method.
func (p *DeadlineTransport) PresetHeaders() http.Header {
	return reqheader.Without(reqheader.Preset(p.next), p.header) // its own field stays its own
}
