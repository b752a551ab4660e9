package tracing

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/internal/contracttest"
)

// bothLayers is the stack under contract test: logical span, a retrying
// layer, attempt span.
func bothLayers(te *telemetry, base http.RoundTripper) http.RoundTripper {
	return chain(base,
		Middleware(te.opts()...),
		testRetry(3, func(int) time.Duration { return 0 }),
		AttemptMiddleware(te.opts(WithPropagators(propagation.TraceContext{}))...))
}

// TestContract runs the contract suite on each layer, recording and with
// no-op providers (the fast path), and on both stacked; every span started
// must have ended and no attempt may be left in flight.
func TestContract(t *testing.T) {
	noop := []Option{WithTracerProvider(tracenoop.NewTracerProvider()), WithMeterProvider(metricnoop.NewMeterProvider())}
	for _, tc := range []struct {
		name string
		mw   func(te *telemetry) func(http.RoundTripper) http.RoundTripper
	}{
		{"Logical", func(te *telemetry) func(http.RoundTripper) http.RoundTripper { return Middleware(te.opts()...) }},
		{"Attempt", func(te *telemetry) func(http.RoundTripper) http.RoundTripper {
			return AttemptMiddleware(te.opts(WithPropagators(propagation.TraceContext{}))...)
		}},
		{"BothLayers", func(te *telemetry) func(http.RoundTripper) http.RoundTripper {
			return func(next http.RoundTripper) http.RoundTripper {
				return chain(next, Middleware(te.opts()...), AttemptMiddleware(te.opts()...))
			}
		}},
		{"LogicalNoop", func(*telemetry) func(http.RoundTripper) http.RoundTripper { return Middleware(noop...) }},
		{"AttemptNoop", func(*telemetry) func(http.RoundTripper) http.RoundTripper { return AttemptMiddleware(noop...) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			te := newTelemetry(t)
			contracttest.Run(t, tc.mw(te),
				contracttest.NeverRefuses("tracing sends every request"),
				contracttest.NeverWaits("tracing waits for nothing"),
				contracttest.NeverDiscards("tracing hands on every response"),
			)
			if n, m := len(te.spans.Started()), len(te.spans.Ended()); n != m {
				t.Errorf("%d spans started, %d ended; want all ended", n, m)
			}
			if m, ok := te.metrics(t)[MetricInFlight]; ok {
				if got := sum(t, m); got != 0 {
					t.Errorf("in flight = %d; want 0", got)
				}
			}
		})
	}
}

// The trace context reaches the upstream on a copy: the caller's request
// carries no traceparent afterwards.
func TestTraceparentOnCopy(t *testing.T) {
	te := newTelemetry(t)
	var seen http.Header
	rt := bothLayers(te, contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen = r.Header.Clone()
		return response(r, 200, ""), nil
	}))
	req, _ := http.NewRequest("GET", "http://u:p@h/x?q=1", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if seen.Get("Traceparent") == "" {
		t.Fatal("base saw no traceparent; the test would prove nothing")
	}
	if got := req.Header.Get("Traceparent"); got != "" {
		t.Errorf("caller's request got traceparent %q", got)
	}
}

// A call canceled in an attempt keeps the caller's context values below and
// ends its logical span with error.type context.Canceled.
func TestCanceledErrorType(t *testing.T) {
	te := newTelemetry(t)
	type ctxKey struct{}
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
	rt := bothLayers(te, contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Context().Value(ctxKey{}) != "v" {
			t.Error("caller's context values lost")
		}
		cancel()
		<-r.Context().Done()
		return nil, r.Context().Err()
	}))
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://h/", nil)
	resp, err := rt.RoundTrip(req)
	if resp != nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("got (%v, %v); want (nil, context.Canceled)", resp, err)
	}
	for _, s := range te.spans.Ended() {
		if s.SpanKind() == trace.SpanKindInternal {
			if v, _ := attr(s, "error.type"); v.AsString() != "context.Canceled" {
				t.Errorf("logical error.type = %q; want context.Canceled", v.AsString())
			}
		}
	}
}

// TestEndToEndTraceparent: the upstream sees, in traceparent, the span ID of
// the attempt span that sent it, in the trace of the logical span.
func TestEndToEndTraceparent(t *testing.T) {
	te := newTelemetry(t)
	var mu sync.Mutex
	var got []trace.SpanContext
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header)))
		mu.Lock()
		got = append(got, sc)
		mu.Unlock()
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "hello")
	}))
	defer srv.Close()
	base := &http.Transport{}
	defer base.CloseIdleConnections()

	client := &http.Client{Transport: bothLayers(te, base), Timeout: 5 * time.Second}
	ctx := callctx.WithRequestID(context.Background(), "e2e")
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/x", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "hello" {
		t.Fatalf("body %q", b)
	}
	resp.Body.Close()

	var logical trace.SpanContext
	var attempts []trace.SpanContext
	for _, s := range te.spans.Ended() {
		if s.SpanKind() == trace.SpanKindClient {
			attempts = append(attempts, s.SpanContext())
		} else {
			logical = s.SpanContext()
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || len(attempts) != 2 {
		t.Fatalf("upstream saw %d requests, %d attempt spans; want 2 and 2", len(got), len(attempts))
	}
	for i := range got {
		if !got[i].IsValid() || !got[i].IsRemote() {
			t.Fatalf("request %d: no valid traceparent (%v)", i, got[i])
		}
		if got[i].SpanID() != attempts[i].SpanID() {
			t.Errorf("request %d: upstream parent span %s; want attempt span %s", i, got[i].SpanID(), attempts[i].SpanID())
		}
		if got[i].TraceID() != logical.TraceID() {
			t.Errorf("request %d: trace %s; want the logical span's %s", i, got[i].TraceID(), logical.TraceID())
		}
	}
}
