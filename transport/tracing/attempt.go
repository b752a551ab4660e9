package tracing

import (
	"context"
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/outboundhttp/outbound/internal/body"
	"github.com/outboundhttp/outbound/internal/idle"
)

// AttemptTransport is the attempt layer: an http.RoundTripper that records
// one CLIENT span per wire attempt through otelhttp.Transport, with
// http.request.resend_count on resends (from the attempt number the retry
// layer puts in the context), the request ID, the route template, and the
// trace context injected into the request headers. It also counts attempts
// in flight (outbound.requests.in_flight) and reports each attempt to the
// logical span of [Transport] when one is in the context.
//
// Place it innermost, right above the base transport, so every attempt a
// retry layer makes passes through it. The span and the in-flight count end
// when the response body is closed or read to the end, or when RoundTrip
// fails. A zero AttemptTransport is not usable; build one with
// [NewAttemptTransport]. It is safe for concurrent use.
type AttemptTransport struct {
	next  http.RoundTripper
	otel  *otelhttp.Transport
	ins   *instruments
	quiet *quiet // nil: every attempt goes through otelhttp
}

var _ http.RoundTripper = (*AttemptTransport)(nil)

// NewAttemptTransport returns the attempt layer around next (nil means
// http.DefaultTransport). See the With options for the providers, the
// propagator and query redaction.
func NewAttemptTransport(next http.RoundTripper, opts ...Option) *AttemptTransport {
	if next == nil {
		next = http.DefaultTransport
	}
	c := newConfig(opts)
	names := new(nameCache)
	tp := &attemptTP{tp: c.tp, redact: c.redactQuery}
	oo := append([]otelhttp.Option(nil), c.otelhttpOpts...)
	oo = append(oo,
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return spanName(r, names) }),
	)
	if c.mp != nil {
		oo = append(oo, otelhttp.WithMeterProvider(c.mp))
	}
	if c.propagators != nil {
		oo = append(oo, otelhttp.WithPropagators(c.propagators))
	}
	return &AttemptTransport{
		next:  next,
		otel:  otelhttp.NewTransport(checked{next}, oo...),
		ins:   newInstruments(c.mp),
		quiet: newQuiet(c, tp, names),
	}
}

// AttemptMiddleware returns the attempt layer as a middleware for
// outbound.Chain.
func AttemptMiddleware(opts ...Option) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper {
		return NewAttemptTransport(next, opts...)
	}
}

// RoundTrip sends one attempt inside a CLIENT span. It never modifies req
// (otelhttp clones it before injecting headers).
func (t *AttemptTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if c := callFrom(ctx); c != nil {
		c.attemptSeen(ctx)
	}
	var set metric.MeasurementOption
	if t.ins.inFlight.Enabled(ctx) {
		set = metric.WithAttributeSet(attribute.NewSet(serverAddr(req), methodAttr(req.Method)))
		t.ins.inFlight.Add(ctx, 1, set)
	}
	resp, err := t.attempt(req)
	if set == nil {
		return resp, err
	}
	if err != nil {
		t.ins.inFlight.Add(ctx, -1, set)
		return nil, err
	}
	ib := &inFlightBody{ins: t.ins, ctx: ctx, set: set}
	body.Track(resp, &ib.Tracker, ib)
	return resp, nil
}

// inFlightBody counts an attempt out of the in-flight requests when the
// caller is done with its body, and is the body's wrapper: one allocation
// for both.
type inFlightBody struct {
	body.Tracker
	ins *instruments
	ctx context.Context
	set metric.MeasurementOption
}

// Release counts the attempt out.
func (b *inFlightBody) Release() { b.ins.inFlight.Add(b.ctx, -1, b.set) }

// attempt sends req inside its span: through otelhttp, or around it when
// nothing would be recorded (quiet).
func (t *AttemptTransport) attempt(req *http.Request) (*http.Response, error) {
	if t.quiet == nil {
		return t.otel.RoundTrip(req)
	}
	return t.quiet.roundTrip(req, t.next, t.otel)
}

// checked is next as otelhttp sees it: what next returns goes through
// body.Checked first, so the attempt span records a broken next as the same
// error every layer gives, and otelhttp, which passes a response and an error
// both through, never gets both.
type checked struct{ next http.RoundTripper }

func (c checked) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	resp, err = body.Checked(resp, err, "tracing")
	if err == nil {
		// otelhttp put its attempt span in req's context.
		recordRateLimitFields(trace.SpanFromContext(req.Context()), resp.Header)
	}
	return resp, err
}

// CloseIdleConnections forwards to the wrapped transport when it has the
// method (otelhttp.Transport does not forward it).
func (t *AttemptTransport) CloseIdleConnections() { idle.Close(t.next) }
