package tracing

import (
	"context"
	"net/http"
	"reflect"
	"sync"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/semconv/v1.43.0/httpconv"
	"go.opentelemetry.io/otel/trace"

	"github.com/outboundhttp/outbound/internal/body"
	"github.com/outboundhttp/outbound/internal/reqheader"
)

// quiet is the attempt layer's way around otelhttp when there is nothing to
// record: a non-recording attempt span (no-op or not-yet-installed global
// providers, a sampler that drops it) and no enabled metric instrument.
// otelhttp would still clone the request, build its span and metric
// attributes and wrap the body — 18 allocations and most of the layer's
// cost for telemetry that goes nowhere. quiet starts the span otelhttp would
// start (same tracer, name and kind), and when it does not record, only
// injects the trace context into the request headers, as otelhttp would, and
// sends the attempt. When the span records, it is handed to otelhttp, which
// then takes it instead of starting a second one (handoff), so nothing is
// recorded differently.
//
// It is off when WithOTelHTTPOptions is used: those options (filters, span
// start options, client traces, metric attributes) change what otelhttp does
// in ways quiet cannot reproduce.
type quiet struct {
	tracer trace.Tracer // otelhttp's: the attemptTP tracer under otelhttp's scope
	names  *nameCache
	prop   propagation.TextMapPropagator
	// propDefault: prop is OpenTelemetry's default global propagator
	// (defaultPropagator), which injects nothing while no propagator is
	// installed.
	propDefault bool
	// otelhttp's own instruments, obtained the same way otelhttp obtains
	// them (an SDK returns the same instrument for the same description), so
	// Enabled reports exactly whether otelhttp would record anything.
	duration httpconv.ClientRequestDuration
	bodySize httpconv.ClientRequestBodySize
	silence  silence // when starting the span can be skipped (silent.go)
}

var clientKind = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}

func newQuiet(c *config, tp *attemptTP, names *nameCache) *quiet {
	if len(c.otelhttpOpts) > 0 {
		return nil
	}
	mp := c.mp
	if mp == nil {
		mp = otel.GetMeterProvider() // otelhttp's default, read when it is built
	}
	prop := c.propagators
	if prop == nil {
		prop = otel.GetTextMapPropagator()
	}
	m := mp.Meter(otelhttp.ScopeName, metric.WithInstrumentationVersion(otelhttp.Version))
	q := &quiet{
		tracer:      tp.Tracer(otelhttp.ScopeName, trace.WithInstrumentationVersion(otelhttp.Version)),
		names:       names,
		prop:        prop,
		propDefault: defaultPropagator != nil && reflect.TypeOf(prop) == defaultPropagator,
		silence:     silenceOf(c.tp),
	}
	var err1, err2 error
	q.duration, err1 = httpconv.NewClientRequestDuration(m,
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10))
	q.bodySize, err2 = httpconv.NewClientRequestBodySize(m)
	if err1 != nil || err2 != nil || q.duration.Inst() == nil || q.bodySize.Inst() == nil {
		return nil // cannot tell whether otelhttp records: always use it
	}
	return q
}

// roundTrip sends one attempt through next when nothing would be recorded,
// else through otel with the started span handed over.
func (q *quiet) roundTrip(req *http.Request, next http.RoundTripper, slow *otelhttp.Transport) (*http.Response, error) {
	ctx := req.Context()
	metrics := q.duration.Inst().Enabled(ctx) || q.bodySize.Inst().Enabled(ctx)
	if !metrics && q.silence.silent(ctx) {
		// No span to start (silent.go); the propagator may still have
		// something to send, such as baggage.
		return q.send(req, ctx, next)
	}
	sctx, span := q.tracer.Start(ctx, spanName(req, q.names), clientKind...)
	if span.IsRecording() || metrics {
		return slow.RoundTrip(req.WithContext(&started{Context: sctx, span: span}))
	}
	span.End()
	return q.send(req, sctx, next)
}

// send injects the trace context of ctx into req's header, as otelhttp
// would, and sends req through next.
func (q *quiet) send(req *http.Request, ctx context.Context, next http.RoundTripper) (*http.Response, error) {
	r := req
	if q.prop != nil && !q.propagatesNothing() {
		c := carriers.Get().(*lazyCarrier)
		c.req = req
		q.prop.Inject(ctx, c)
		if c.copy != nil {
			r = c.copy
		}
		*c = lazyCarrier{}
		carriers.Put(c)
	}
	resp, err := next.RoundTrip(r)
	return body.Checked(resp, err, "tracing")
}

// propagatesNothing reports whether q.prop is OpenTelemetry's default global
// propagator and no propagator has been installed since (the global is still
// that one): it then injects nothing, and would lock a mutex that every call
// of the process shares to find that out (its effectiveDelegate). Once one is
// installed, q.prop delegates to it and is called as before.
func (q *quiet) propagatesNothing() bool {
	// The comparison cannot panic on an uncomparable propagator (a
	// composite is a slice): q.prop is the default's pointer, and interfaces
	// of different dynamic types compare unequal without comparing values.
	return q.propDefault && otel.GetTextMapPropagator() == q.prop
}

// defaultPropagator is the type of OpenTelemetry's default global
// TextMapPropagator, the one otel.GetTextMapPropagator returns until
// otel.SetTextMapPropagator installs another (from then on it delegates to
// that one), or nil if the global was not that default when this package
// was initialized. TestDefaultPropagatorRecognized fails if an OpenTelemetry
// upgrade changes the type.
var defaultPropagator = otelDefault(otel.GetTextMapPropagator(), "textMapPropagator")

// lazyCarrier is a propagation.TextMapCarrier over a request's header that
// copies the request (reqheader.Copy) on the first Set, so an attempt with
// no trace context to send is not copied at all.
type lazyCarrier struct {
	req  *http.Request
	copy *http.Request
}

var carriers = sync.Pool{New: func() any { return new(lazyCarrier) }}

func (c *lazyCarrier) header() http.Header {
	if c.copy != nil {
		return c.copy.Header
	}
	return c.req.Header
}

func (c *lazyCarrier) Get(key string) string { return c.header().Get(key) }

func (c *lazyCarrier) Set(key, value string) {
	if c.copy == nil {
		c.copy = reqheader.Copy(c.req, c.req.Context())
	}
	c.copy.Header.Set(key, value)
}

func (c *lazyCarrier) Keys() []string { return propagation.HeaderCarrier(c.header()).Keys() }

// startedKey marks the context of an attempt whose span quiet already
// started, for attemptTracer.Start to take instead of starting another.
type startedKey struct{}

// started is the context of an attempt whose span is handed from quiet to
// otelhttp (one allocation: the context is the marker). taken makes the
// handoff one-shot: a second attempt layer below starts its own span as it
// would without quiet.
type started struct {
	context.Context
	span  trace.Span
	taken bool // set by the one goroutine that runs the attempt
}

func (s *started) Value(k any) any {
	if k == (startedKey{}) {
		return s
	}
	return s.Context.Value(k)
}

func (s *started) String() string { return "tracing.startedAttempt" }

// takeStarted returns the span quiet started for this attempt, once.
func takeStarted(ctx context.Context) (trace.Span, bool) {
	st, ok := ctx.Value(startedKey{}).(*started)
	if !ok || st.taken {
		return nil, false
	}
	st.taken = true
	return st.span, true
}
