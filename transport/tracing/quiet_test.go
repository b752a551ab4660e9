package tracing

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/outboundhttp/outbound/internal/contracttest"
)

var remoteParent = trace.NewSpanContext(trace.SpanContextConfig{
	TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true})

// sentTraceparent sends one request with ctx through the attempt layer built
// with opts and returns the traceparent the base saw, and whether the base
// got the caller's request itself (no copy).
func sentTraceparent(t *testing.T, ctx context.Context, opts ...Option) (string, bool) {
	t.Helper()
	var got string
	var same bool
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://h/", nil)
	rt := NewAttemptTransport(contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		got, same = r.Header.Get("Traceparent"), r == req
		return ok200(r)
	}), opts...)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(req.Header) != 0 {
		t.Fatalf("caller's request modified: %v", req.Header)
	}
	return got, same
}

// Around otelhttp, the attempt layer sends what otelhttp would: the trace
// context of the attempt span (a dropped span's own ID, with the sampled
// flag off), or nothing and no copy of the request when there is none.
func TestQuietSendsWhatOtelhttpSends(t *testing.T) {
	prop := WithPropagators(propagation.TraceContext{})
	noMetrics := WithMeterProvider(metricnoop.NewMeterProvider())
	viaOtelhttp := WithOTelHTTPOptions(otelhttp.WithSpanOptions()) // any otelhttp option turns quiet off
	dropping := WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample())))
	parent := trace.ContextWithRemoteSpanContext(context.Background(), remoteParent)

	for _, tc := range []struct {
		name string
		ctx  context.Context
		tp   Option
	}{
		{"noop, parent", parent, WithTracerProvider(tracenoop.NewTracerProvider())},
		{"noop, no parent", context.Background(), WithTracerProvider(tracenoop.NewTracerProvider())},
		{"sampler drops, parent", parent, dropping},
		{"sampler drops, no parent", context.Background(), dropping},
	} {
		t.Run(tc.name, func(t *testing.T) {
			quick, same := sentTraceparent(t, tc.ctx, tc.tp, noMetrics, prop)
			slow, _ := sentTraceparent(t, tc.ctx, tc.tp, noMetrics, prop, viaOtelhttp)
			if (quick == "") != (slow == "") || len(quick) != len(slow) {
				t.Fatalf("traceparent %q; otelhttp sends %q", quick, slow)
			}
			if quick == "" {
				if !same {
					t.Error("request copied with no header to add")
				}
				return
			}
			// Same version and flags; the parent's trace, if there is one;
			// the parent's span ID where otelhttp sends it (no-op span),
			// else each attempt's own.
			q, s := strings.Split(quick, "-"), strings.Split(slow, "-")
			hasParent := tc.ctx != context.Background()
			isParent := func(id string) bool { return id == remoteParent.SpanID().String() }
			if q[0] != s[0] || q[3] != s[3] || (hasParent && q[1] != s[1]) || isParent(q[2]) != isParent(s[2]) {
				t.Errorf("traceparent %q; otelhttp sends %q", quick, slow)
			}
		})
	}
}

// When the span records or otelhttp's metrics are on, the attempt goes
// through otelhttp, with the span the layer started handed over: one attempt
// span, not two; otelhttp's metrics are recorded.
func TestQuietHandsOverToOtelhttp(t *testing.T) {
	te := newTelemetry(t)
	// Metrics on, traces off: otelhttp's duration is recorded.
	rt := NewAttemptTransport(contracttest.RoundTripFunc(ok200), WithTracerProvider(tracenoop.NewTracerProvider()), WithMeterProvider(te.mp))
	req, _ := http.NewRequest("GET", "http://h/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n, _ := histFloat(t, te.metrics(t)["http.client.request.duration"]); n != 1 {
		t.Errorf("http.client.request.duration count = %d; want 1", n)
	}

	// Traces on, over a base that is itself an otelhttp.Transport: the
	// handover is one-shot, so the inner otelhttp starts its own span, a
	// child of the attempt span.
	inner := otelhttp.NewTransport(contracttest.RoundTripFunc(ok200), otelhttp.WithTracerProvider(te.tp), otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()))
	rt = NewAttemptTransport(inner, te.opts()...)
	resp, err = rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	spans := te.spans.Ended()
	if len(spans) != 2 {
		t.Fatalf("spans = %d; want 2 (the attempt's and the inner otelhttp's)", len(spans))
	}
	out, in := spans[0], spans[1]
	if out.Name() != "GET" {
		out, in = in, out // the attempt span is named by spanName, the inner one by otelhttp
	}
	if out.SpanKind() != trace.SpanKindClient || out.Name() != "GET" || in.Parent().SpanID() != out.SpanContext().SpanID() {
		t.Errorf("attempt span %q kind %v; inner span's parent %v, want %v", out.Name(), out.SpanKind(), in.Parent().SpanID(), out.SpanContext().SpanID())
	}
	if _, ok := attr(out, "http.request.method"); !ok {
		t.Error("attempt span has no otelhttp attributes")
	}
	if n := len(te.spans.Started()); n != 2 {
		t.Errorf("spans started = %d; want 2 (the span handed over is not started twice)", n)
	}

	// Two attempt layers: the inner one does not take the outer one's span.
	te = newTelemetry(t)
	rt = NewAttemptTransport(NewAttemptTransport(contracttest.RoundTripFunc(ok200), te.opts()...), te.opts()...)
	resp, err = rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if started, ended := len(te.spans.Started()), len(te.spans.Ended()); started != 2 || ended != 2 {
		t.Errorf("nested attempt layers: %d spans started, %d ended; want 2 and 2", started, ended)
	}
}

// With nothing to record the attempt layer costs no allocation (no parent
// trace context: nothing to inject), against otelhttp's 18.
func TestQuietAllocations(t *testing.T) {
	resp := response(nil, 200, "")
	rt := NewAttemptTransport(contracttest.RoundTripFunc(func(*http.Request) (*http.Response, error) { return resp, nil }),
		WithTracerProvider(tracenoop.NewTracerProvider()), WithMeterProvider(metricnoop.NewMeterProvider()),
		WithPropagators(propagation.TraceContext{}))
	req, _ := http.NewRequest("GET", "http://h/", nil)
	if n := testing.AllocsPerRun(100, func() { rt.RoundTrip(req) }); n > 1 {
		t.Errorf("RoundTrip allocates %v times; want at most 1", n)
	}
}
