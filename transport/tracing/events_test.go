package tracing

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/internal/contracttest"
)

// TestEventsToMetrics emits every event kind the concern packages report, as
// they do (callctx.Emit on the attempt's context), and checks the span events
// and the metrics they turn into.
func TestEventsToMetrics(t *testing.T) {
	te := newTelemetry(t)
	const key = "https://api.example.com:443"
	events := []callctx.Event{
		{Kind: callctx.KindRateLimitWait, Attempt: 0, Delay: 250 * time.Millisecond, Reason: "rate", Key: key},
		{Kind: callctx.KindRateLimitFallback, Attempt: 0, Reason: "shared_limiter_unreachable", Key: key},
		{Kind: callctx.KindRetry, Attempt: 1, Delay: 200 * time.Millisecond, Reason: "timeout"},
		{Kind: callctx.KindCircuitRejected, Attempt: 1, Delay: 5 * time.Second, Key: key},
		{Kind: callctx.KindRetry, Attempt: 2, Delay: 400 * time.Millisecond, Reason: "circuit_open"},
		{Kind: callctx.KindRateLimitRejected, Attempt: 2, Reason: "queue", Key: key},
		{Kind: callctx.KindRetryRefused, Attempt: 2, Reason: "budget"},
		{Kind: callctx.KindBudgetExhausted, Attempt: 2},
	}
	emitter := func(next http.RoundTripper) http.RoundTripper {
		return contracttest.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			for _, ev := range events {
				callctx.Emit(req.Context(), ev)
			}
			return next.RoundTrip(req)
		})
	}
	rt := chain(contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) { return response(r, 429, ""), nil }),
		Middleware(te.opts()...), emitter)
	req, _ := http.NewRequest("POST", "https://api.example.com/v1/orders", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	spans := te.spans.Ended()
	if len(spans) != 1 {
		t.Fatalf("spans = %d; want 1", len(spans))
	}
	evs := spans[0].Events()
	if len(evs) != len(events) {
		t.Fatalf("span events = %d; want %d", len(evs), len(events))
	}
	for i, ev := range evs {
		want := events[i]
		if ev.Name != "outbound."+want.Kind.String() {
			t.Errorf("event %d = %q; want outbound.%s", i, ev.Name, want.Kind)
		}
		s := attribute.NewSet(ev.Attributes...)
		if v, _ := s.Value(AttrAttempt); v.AsInt64() != int64(want.Attempt) {
			t.Errorf("event %d attempt = %d; want %d", i, v.AsInt64(), want.Attempt)
		}
		if v, ok := s.Value(AttrReason); ok != (want.Reason != "") || v.AsString() != want.Reason {
			t.Errorf("event %d reason = %q; want %q", i, v.AsString(), want.Reason)
		}
		if v, ok := s.Value(AttrUpstream); ok != (want.Key != "") || v.AsString() != want.Key {
			t.Errorf("event %d upstream = %q; want %q", i, v.AsString(), want.Key)
		}
		if v, ok := s.Value(AttrDelay); want.Delay > 0 && (!ok || v.AsFloat64() != want.Delay.Seconds()) {
			t.Errorf("event %d delay = %v; want %v", i, v.AsFloat64(), want.Delay.Seconds())
		}
	}
	// Two retries announced: three attempts, even without an attempt layer.
	if v, _ := attr(spans[0], AttrAttempts); v.AsInt64() != 3 {
		t.Errorf("%s = %d; want 3", AttrAttempts, v.AsInt64())
	}

	ms := te.metrics(t)
	post := []attribute.KeyValue{semconv.ServerAddress("api.example.com"), semconv.HTTPRequestMethodPost}
	for _, tc := range []struct {
		metric string
		want   int64
		attrs  []attribute.KeyValue
	}{
		{MetricRetries, 1, []attribute.KeyValue{AttrReason.String("timeout")}},
		{MetricRetries, 1, []attribute.KeyValue{AttrReason.String("circuit_open")}},
		{MetricRetryRefusals, 1, []attribute.KeyValue{AttrReason.String("budget")}},
		{MetricBudgetExhausted, 1, nil},
		{MetricRateLimitRejections, 1, []attribute.KeyValue{AttrReason.String("queue")}},
		{MetricRateLimitFallbacks, 1, []attribute.KeyValue{AttrReason.String("shared_limiter_unreachable")}},
		{MetricCircuitRejections, 1, nil},
	} {
		if got := sum(t, ms[tc.metric], append(tc.attrs, post...)...); got != tc.want {
			t.Errorf("%s%v = %d; want %d", tc.metric, tc.attrs, got, tc.want)
		}
	}
	if n, total := histFloat(t, ms[MetricRateLimitWait]); n != 1 || total != 0.25 {
		t.Errorf("%s: count %d sum %v; want 1 and 0.25", MetricRateLimitWait, n, total)
	}
	forEachAttrSet(ms[MetricCallAttempts], func(s attribute.Set) {
		if v, _ := s.Value(AttrStatusClass); v.AsString() != "4xx" {
			t.Errorf("%s status class = %q; want 4xx", MetricCallAttempts, v.AsString())
		}
	})
}

func TestCircuitObserver(t *testing.T) {
	te := newTelemetry(t)
	obs := CircuitObserver(WithMeterProvider(te.mp))
	obs("https://a:443", "closed", "open")
	obs("https://a:443", "open", "half-open")
	obs("https://a:443", "closed", "open")
	ms := te.metrics(t)
	if got := sum(t, ms[MetricCircuitTransitions], AttrUpstream.String("https://a:443"), AttrCircuitFrom.String("closed"), AttrCircuitTo.String("open")); got != 2 {
		t.Errorf("closed->open = %d; want 2", got)
	}
	if got := sum(t, ms[MetricCircuitTransitions]); got != 3 {
		t.Errorf("all transitions = %d; want 3", got)
	}
}

// TestRequestIDFromBelow: a request-ID layer placed below the logical layer
// still gets its ID onto the logical span, through the first attempt.
func TestRequestIDFromBelow(t *testing.T) {
	te := newTelemetry(t)
	setID := func(next http.RoundTripper) http.RoundTripper {
		return contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			return next.RoundTrip(r.WithContext(callctx.WithRequestID(r.Context(), "late-id")))
		})
	}
	rt := chain(contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) { return response(r, 200, ""), nil }),
		Middleware(te.opts()...), setID, AttemptMiddleware(te.opts()...))
	req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://h/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, s := range te.spans.Ended() {
		if v, _ := attr(s, AttrRequestID); v.AsString() != "late-id" {
			t.Errorf("span %v request ID = %q; want late-id", s.SpanKind(), v.AsString())
		}
	}
}
