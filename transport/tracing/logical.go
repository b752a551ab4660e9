package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/outboundhttp/outbound/internal/body"
	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/internal/idle"
	"github.com/outboundhttp/outbound/internal/reqheader"
)

// Transport is the logical layer: an http.RoundTripper that records one
// INTERNAL span around the whole call — every attempt, backoff wait and
// local refusal below it — and the per-call metrics.
//
// It installs a recorder in the request context; the retry, budget,
// rate-limit and circuit layers below report to it, and each report becomes
// a span event ("outbound.retry" with the attempt, delay and reason, ...) and
// a metric. When the call ends, the span gets the number of attempts
// (outbound.attempts) and the outcome. The span carries no http.* attributes:
// per the HTTP semantic conventions those belong to the CLIENT spans of
// [AttemptTransport], and repeating them on the parent would count every call
// twice in span-derived HTTP metrics.
//
// Place it outside the retry layer (and inside the request-ID layer, so the
// ID is known when the span starts). The span ends when the response body is
// closed or read to the end, or when RoundTrip fails. A zero Transport is not
// usable; build one with [NewTransport]. It is safe for concurrent use.
type Transport struct {
	next   http.RoundTripper
	tracer trace.Tracer
	ins    *instruments
	redact bool
	// startOpts is built once: boxing the span kind option on every call
	// would cost an allocation per request.
	startOpts []trace.SpanStartOption
	names     nameCache
	silence   silence // when starting the span can be skipped (silent.go)
}

var _ http.RoundTripper = (*Transport)(nil)

// NewTransport returns the logical layer around next (nil means
// http.DefaultTransport). WithTracerProvider, WithMeterProvider and
// WithRedactQuery concern it.
func NewTransport(next http.RoundTripper, opts ...Option) *Transport {
	if next == nil {
		next = http.DefaultTransport
	}
	c := newConfig(opts)
	tp := c.tp
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return &Transport{
		next:   next,
		tracer: tp.Tracer(ScopeName),
		ins:    newInstruments(c.mp),
		redact: c.redactQuery,

		silence:   silenceOf(tp),
		startOpts: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal)},
	}
}

// Middleware returns the logical layer as a middleware for outbound.Chain.
func Middleware(opts ...Option) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper {
		return NewTransport(next, opts...)
	}
}

// CloseIdleConnections forwards to the wrapped transport when it has the method.
func (t *Transport) CloseIdleConnections() { idle.Close(t.next) }

// PresetHeaders forwards what the RoundTripper below reports
// (internal/reqheader.Preset): the header fields a layer below sets on every
// request that lacks them, which this layer passes on unchanged, so a
// request-ID layer above may set them on the copy it makes anyway and spare
// that layer a copy of its own. Callers need not use the method.
func (t *Transport) PresetHeaders() http.Header { return reqheader.Preset(t.next) }

// AdoptsCall reports what the RoundTripper below reports
// (internal/callctx.AdoptsCall): a request-ID layer above may bind its call
// context for a budget layer below to fill in place. When nothing records,
// RoundTrip passes the request through unchanged, and the budget layer finds
// the bound copy; when something records, it sends a copy of its own, which
// the budget layer does not adopt and gives a context of its own, as
// without this method. The layer never sends the request twice. In
// NewClient's order (requestid, tracing, budget) the two share one context
// and one request copy again (docs/performance.md).
func (t *Transport) AdoptsCall() bool { return callctx.AdoptsCall(t.next) }

// RoundTrip runs the call below inside the logical span. It never modifies
// req: the layers below get a shallow copy with the span and the recorder in
// its context.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	metrics := t.ins.callMetricsEnabled(req.Context())
	if !metrics && t.silence.silent(req.Context()) {
		// Nothing can record the span, and it would carry no span context:
		// do not start it (silent.go).
		resp, err := t.next.RoundTrip(req)
		return body.Checked(resp, err, "tracing")
	}
	start := time.Now()
	ctx, span := t.tracer.Start(req.Context(), spanName(req, &t.names), t.startOpts...)
	if !span.IsRecording() && !metrics {
		// Nothing to record (no-op or sampled-out tracer, no-op meter):
		// pass the call through, keeping only the span context for the
		// attempts below.
		span.End()
		if !trace.SpanContextFromContext(req.Context()).Equal(span.SpanContext()) {
			req = req.WithContext(ctx)
		}
		resp, err := t.next.RoundTrip(req)
		return body.Checked(resp, err, "tracing")
	}
	c := &call{span: span, ins: t.ins, server: serverAddr(req), method: methodAttr(req.Method)}
	if span.IsRecording() {
		attrs := make([]attribute.KeyValue, 0, 3)
		attrs = append(attrs, c.server)
		if id, ok := callctx.RequestID(ctx); ok {
			attrs = append(attrs, AttrRequestID.String(id))
		} else {
			// A request-ID layer placed below this one: take the ID from
			// the first attempt that carries it.
			c.needID.Store(true)
		}
		if r, ok := callctx.Route(ctx); ok {
			attrs = append(attrs, semconv.URLTemplate(r))
		}
		span.SetAttributes(attrs...)
	}
	ctx = callctx.WithRecorder(context.WithValue(ctx, callKey{}, c), c)

	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	resp, err = body.Checked(resp, err, "tracing")

	code := 0
	if err == nil {
		code = resp.StatusCode
	}
	attempts := c.attempts()
	class := statusClass(code, err)
	if t.ins.attempts.Enabled(ctx) || t.ins.duration.Enabled(ctx) {
		set := metric.WithAttributeSet(attribute.NewSet(c.server, c.method, AttrStatusClass.String(class)))
		t.ins.attempts.Record(ctx, attempts, set)
		t.ins.duration.Record(ctx, time.Since(start).Seconds(), set)
	}
	if span.IsRecording() {
		attrs := make([]attribute.KeyValue, 0, 4)
		attrs = append(attrs, AttrAttempts.Int64(attempts), AttrStatusClass.String(class))
		if err != nil {
			attrs = append(attrs, semconv.ErrorTypeKey.String(errorType(err)))
			span.SetStatus(codes.Error, scrubText(err.Error(), t.redact))
		} else {
			attrs = append(attrs, AttrStatusCode.Int(code))
			if code >= 400 {
				// As for HTTP client spans: a 4xx or 5xx final answer is a
				// failed call.
				attrs = append(attrs, semconv.ErrorTypeKey.String(strconv.Itoa(code)))
				span.SetStatus(codes.Error, "")
			}
		}
		span.SetAttributes(attrs...)
	}
	if err != nil {
		span.End()
		return nil, err
	}
	sb := &spanBody{span: span}
	body.Track(resp, &sb.Tracker, sb)
	return resp, nil
}

// spanBody ends the call's span when the caller is done with the body, and
// is the body's wrapper: one allocation for both.
type spanBody struct {
	body.Tracker
	span trace.Span
}

// Release ends the span.
func (b *spanBody) Release() { b.span.End() }

type callKey struct{}

// callFrom returns the logical call the context belongs to, if a Transport
// is above. The attempt layer reports to it through this unexported key; the
// concern packages use callctx.Emit.
func callFrom(ctx context.Context) *call {
	c, _ := ctx.Value(callKey{}).(*call)
	return c
}

// call is the per-call state of the logical layer and its callctx.Recorder.
type call struct {
	span    trace.Span
	ins     *instruments
	server  attribute.KeyValue
	method  attribute.KeyValue
	retries atomic.Int64 // resends announced: retries and hedges
	wire    atomic.Int64 // attempts seen by AttemptTransport
	needID  atomic.Bool
}

// attempts is one plus the retries and hedges announced by the retry and
// hedge layers, or the number of attempts the attempt layer saw if that is
// more (a retrying RoundTripper that does not announce its retries).
func (c *call) attempts() int64 {
	return max(1+c.retries.Load(), c.wire.Load())
}

func (c *call) attemptSeen(ctx context.Context) {
	c.wire.Add(1)
	if c.needID.Load() {
		if id, ok := callctx.RequestID(ctx); ok && c.needID.CompareAndSwap(true, false) {
			c.span.SetAttributes(AttrRequestID.String(id))
		}
	}
}

// Record implements callctx.Recorder: each event becomes a span event named
// "outbound.<kind>" and a metric.
func (c *call) Record(ctx context.Context, ev callctx.Event) {
	if ev.Kind == callctx.KindRetry || ev.Kind == callctx.KindHedge {
		c.retries.Add(1)
	}
	if c.span.IsRecording() {
		attrs := make([]attribute.KeyValue, 0, 4)
		attrs = append(attrs, AttrAttempt.Int(ev.Attempt))
		if ev.Delay > 0 || ev.Kind == callctx.KindRetry || ev.Kind == callctx.KindRateLimitWait || ev.Kind == callctx.KindHedge {
			attrs = append(attrs, AttrDelay.Float64(ev.Delay.Seconds()))
		}
		if ev.Reason != "" {
			attrs = append(attrs, AttrReason.String(ev.Reason))
		}
		if ev.Key != "" {
			attrs = append(attrs, AttrUpstream.String(ev.Key))
		}
		c.span.AddEvent("outbound."+ev.Kind.String(), trace.WithAttributes(attrs...))
	}
	switch ev.Kind {
	case callctx.KindRetry:
		c.count(ctx, c.ins.retries, ev.Reason)
	case callctx.KindRetryRefused:
		c.count(ctx, c.ins.retryRefusals, ev.Reason)
	case callctx.KindBudgetExhausted:
		c.count(ctx, c.ins.budgetExhausted, "")
	case callctx.KindRateLimitWait:
		if c.ins.rlWait.Enabled(ctx) {
			c.ins.rlWait.Record(ctx, ev.Delay.Seconds(), metric.WithAttributes(c.server, c.method, AttrReason.String(ev.Reason)))
		}
	case callctx.KindRateLimitRejected:
		c.count(ctx, c.ins.rlRejections, ev.Reason)
	case callctx.KindCircuitRejected:
		c.count(ctx, c.ins.cbRejections, "")
	case callctx.KindRateLimitFallback:
		c.count(ctx, c.ins.rlFallbacks, ev.Reason)
	case callctx.KindHedge:
		c.count(ctx, c.ins.hedges, "")
	case callctx.KindHedgeWon:
		c.count(ctx, c.ins.hedgeWins, ev.Reason)
	case callctx.KindHedgeSuppressed:
		c.count(ctx, c.ins.hedgeSuppressed, ev.Reason)
	}
}

func (c *call) count(ctx context.Context, ctr metric.Int64Counter, reason string) {
	if !ctr.Enabled(ctx) {
		return
	}
	if reason == "" {
		ctr.Add(ctx, 1, metric.WithAttributes(c.server, c.method))
		return
	}
	ctr.Add(ctx, 1, metric.WithAttributes(c.server, c.method, AttrReason.String(reason)))
}

// errorType gives error.type a bounded value: the context errors by name,
// anything else by its Go type, as otelhttp does for attempts.
func errorType(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "context.DeadlineExceeded"
	case errors.Is(err, context.Canceled):
		return "context.Canceled"
	}
	return fmt.Sprintf("%T", err)
}
