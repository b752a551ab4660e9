package tracing

import (
	"context"
	"net/http"
	"testing"
	"time"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/internal/contracttest"
)

func ok200(r *http.Request) (*http.Response, error) { return response(r, 200, ""), nil }

// With no-op providers the layers record nothing but still carry the
// caller's trace context to the upstream.
func TestNoopProvidersPropagateParent(t *testing.T) {
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true})
	opts := []Option{WithTracerProvider(tracenoop.NewTracerProvider()), WithMeterProvider(metricnoop.NewMeterProvider()),
		WithPropagators(propagation.TraceContext{})}
	var got string
	rt := chain(contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		got = r.Header.Get("Traceparent")
		return ok200(r)
	}), Middleware(opts...), testRetry(2, nil), AttemptMiddleware(opts...))
	req, _ := http.NewRequestWithContext(trace.ContextWithRemoteSpanContext(context.Background(), parent), "GET", "http://h/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "00-01000000000000000000000000000000-0200000000000000-01"; got != want {
		t.Errorf("traceparent = %q; want %q", got, want)
	}
}

// Metrics are recorded even when traces are off.
func TestMetricsWithoutTraces(t *testing.T) {
	te := newTelemetry(t)
	opts := []Option{WithTracerProvider(tracenoop.NewTracerProvider()), WithMeterProvider(te.mp)}
	base, _ := flaky(1)
	rt := chain(base, Middleware(opts...), testRetry(3, func(int) time.Duration { return 0 }), AttemptMiddleware(opts...))
	req, _ := http.NewRequest("GET", "http://h/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ms := te.metrics(t)
	if _, total := histInt(t, ms[MetricCallAttempts]); total != 2 {
		t.Errorf("attempts = %d; want 2", total)
	}
	if got := sum(t, ms[MetricRetries]); got != 1 {
		t.Errorf("retries = %d; want 1", got)
	}
}

// Spans are recorded even when metrics are off, and the defaults (global
// providers) work without options.
func TestTracesWithoutMetricsAndDefaults(t *testing.T) {
	te := newTelemetry(t)
	opts := []Option{WithTracerProvider(te.tp), WithMeterProvider(metricnoop.NewMeterProvider())}
	rt := chain(contracttest.RoundTripFunc(ok200), Middleware(opts...), AttemptMiddleware())
	ctx := callctx.WithRequestID(context.Background(), "x")
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://h/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The attempt layer has no provider option: it follows the logical
	// span's provider, as otelhttp does.
	if n := len(te.spans.Ended()); n != 2 {
		t.Errorf("spans = %d; want 2", n)
	}
	rt = chain(contracttest.RoundTripFunc(ok200), Middleware(), AttemptMiddleware())
	resp, err = rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}
