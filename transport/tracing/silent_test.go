package tracing

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/baggage"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/outboundhttp/outbound/internal/contracttest"
)

// The skip depends on recognizing OpenTelemetry's default global provider;
// an upgrade that renames its type must fail here, not silently cost the
// allocations again.
func TestDefaultGlobalRecognized(t *testing.T) {
	if defaultGlobal == nil {
		t.Fatalf("the default global TracerProvider (%T) is not recognized", otel.GetTracerProvider())
	}
	te := newTelemetry(t)
	for _, c := range []struct {
		name string
		tp   trace.TracerProvider
		want silence
	}{
		{"nil (the global, per call)", nil, silenceGlobal},
		{"the default global", otel.GetTracerProvider(), silenceGlobal},
		{"noop", tracenoop.NewTracerProvider(), silenceAlways},
		{"SDK", te.tp, silenceNever},
	} {
		if got := silenceOf(c.tp); got != c.want {
			t.Errorf("silenceOf(%s) = %d; want %d", c.name, got, c.want)
		}
	}
}

// globalSDKChild marks the child process of TestSilentGlobalUntilSDKInstalled,
// which installs a global SDK: that cannot be undone in this process.
const globalSDKChild = "OUTBOUND_TRACING_GLOBAL_SDK_CHILD"

// On the default global provider, no span is started while no SDK is
// installed (no allocation), and once one is installed the same layers
// record both spans.
func TestSilentGlobalUntilSDKInstalled(t *testing.T) {
	if !inChild(t, globalSDKChild) {
		return
	}
	resp := response(nil, 200, "")
	base := contracttest.RoundTripFunc(func(*http.Request) (*http.Response, error) { return resp, nil })
	rt := chain(base, Middleware(WithMeterProvider(metricnoop.NewMeterProvider())),
		AttemptMiddleware(WithMeterProvider(metricnoop.NewMeterProvider())))
	req, _ := http.NewRequest("GET", "http://h/", nil)
	if n := testing.AllocsPerRun(100, func() {
		r, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
	}); n > 0 {
		t.Errorf("before an SDK is installed: %v allocations per call; want 0", n)
	}

	te := newTelemetry(t)
	otel.SetTracerProvider(te.tp)
	r, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if n := len(te.spans.Ended()); n != 2 {
		t.Errorf("after otel.SetTracerProvider: %d spans; want 2 (logical and attempt)", n)
	}
}

// Without a span the propagators still send what the context carries, such
// as baggage, and a parent span context goes on as the trace context.
func TestSilentStillPropagates(t *testing.T) {
	opts := []Option{WithTracerProvider(tracenoop.NewTracerProvider()), WithMeterProvider(metricnoop.NewMeterProvider()),
		WithPropagators(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))}
	var got http.Header
	rt := chain(contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		got = r.Header.Clone()
		return ok200(r)
	}), Middleware(opts...), AttemptMiddleware(opts...))
	m, _ := baggage.NewMember("tenant", "acme")
	b, _ := baggage.New(m)
	req, _ := http.NewRequestWithContext(baggage.ContextWithBaggage(context.Background(), b), "GET", "http://h/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got.Get("Baggage") != "tenant=acme" || got.Get("Traceparent") != "" {
		t.Errorf("no parent span: baggage %q, traceparent %q; want tenant=acme and none", got.Get("Baggage"), got.Get("Traceparent"))
	}
}

// The propagator skip depends on recognizing OpenTelemetry's default global
// TextMapPropagator; an upgrade that renames its type must fail here.
func TestDefaultPropagatorRecognized(t *testing.T) {
	if defaultPropagator == nil {
		t.Fatalf("the default global TextMapPropagator (%T) is not recognized", otel.GetTextMapPropagator())
	}
}

// globalPropagatorChild marks the child process of
// TestDefaultPropagatorUntilInstalled, which installs a global propagator:
// that cannot be undone in this process.
const globalPropagatorChild = "OUTBOUND_TRACING_GLOBAL_PROPAGATOR_CHILD"

// On the default global propagator the attempt layer injects nothing while
// none is installed, as that propagator would, and once one is installed,
// after the layers were built, the same layers send the trace context of a
// parent span.
func TestDefaultPropagatorUntilInstalled(t *testing.T) {
	if !inChild(t, globalPropagatorChild) {
		return
	}
	var got http.Header
	rt := chain(contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		got = r.Header.Clone()
		return ok200(r)
	}), Middleware(WithMeterProvider(metricnoop.NewMeterProvider())),
		AttemptMiddleware(WithMeterProvider(metricnoop.NewMeterProvider())))
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	call := func() string {
		req, _ := http.NewRequestWithContext(trace.ContextWithRemoteSpanContext(context.Background(), parent), "GET", "http://h/", nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return got.Get("Traceparent")
	}
	if tp := call(); tp != "" {
		t.Fatalf("before a propagator is installed: traceparent %q; want none", tp)
	}
	// A composite, whose type is a slice: comparing it with the default
	// must not panic.
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}))
	if tp := call(); tp == "" {
		t.Fatal("after otel.SetTextMapPropagator: no traceparent; want the parent's trace context")
	}
}

// inChild reports whether this is the child process, marked by the
// environment variable mark, in which the test t changes OpenTelemetry's
// globals for good. In the parent it runs t alone in such a child, fails t
// unless the child passed it, and reports false.
func inChild(t *testing.T, mark string) bool {
	t.Helper()
	if os.Getenv(mark) != "" {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v")
	cmd.Env = append(os.Environ(), mark+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
	return false
}
