package tracing

import (
	"context"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/internal/contracttest"
)

// flaky answers 503 for the first fails calls, then 200 "ok".
func flaky(fails int) (http.RoundTripper, *atomic.Int32) {
	var calls atomic.Int32
	return contracttest.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		if int(calls.Add(1)) <= fails {
			return response(req, 503, "busy"), nil
		}
		return response(req, 200, "ok"), nil
	}), &calls
}

func TestRetriedCall(t *testing.T) {
	te := newTelemetry(t)
	base, calls := flaky(2)
	rt := chain(base,
		Middleware(te.opts()...),
		testRetry(4, func(n int) time.Duration { return time.Duration(n) * 100 * time.Millisecond }),
		AttemptMiddleware(te.opts()...),
	)
	ctx := callctx.WithRequestID(context.Background(), "req-42")
	ctx = WithRoute(ctx, "/v1/users/{id}")
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://api.example.com/v1/users/7", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := calls.Load(); got != 3 {
		t.Fatalf("upstream calls = %d; want 3", got)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "ok" {
		t.Fatalf("body = %q; want ok", b)
	}
	resp.Body.Close()

	spans := te.spans.Ended()
	if len(spans) != 4 {
		t.Fatalf("ended spans = %d; want 4", len(spans))
	}
	var logical sdktrace.ReadOnlySpan
	var attempts []sdktrace.ReadOnlySpan
	for _, s := range spans {
		switch s.SpanKind() {
		case trace.SpanKindInternal:
			logical = s
		case trace.SpanKindClient:
			attempts = append(attempts, s)
		default:
			t.Fatalf("span %q kind %v", s.Name(), s.SpanKind())
		}
	}
	if logical == nil || len(attempts) != 3 {
		t.Fatalf("got logical=%v and %d client spans; want 1 and 3", logical != nil, len(attempts))
	}
	if got, want := logical.Name(), "GET /v1/users/{id}"; got != want {
		t.Errorf("logical name = %q; want %q", got, want)
	}
	if v, _ := attr(logical, AttrAttempts); v.AsInt64() != 3 {
		t.Errorf("logical %s = %v; want 3", AttrAttempts, v.String())
	}
	if v, _ := attr(logical, AttrStatusCode); v.AsInt64() != 200 {
		t.Errorf("logical %s = %v; want 200", AttrStatusCode, v.String())
	}
	for _, kv := range logical.Attributes() {
		if strings.HasPrefix(string(kv.Key), "http.") {
			t.Errorf("logical span has HTTP attribute %s; it belongs to the CLIENT spans", kv.Key)
		}
	}
	evs := logical.Events()
	if len(evs) != 2 {
		t.Fatalf("logical events = %d; want 2", len(evs))
	}
	for i, ev := range evs {
		if ev.Name != "outbound.retry" {
			t.Errorf("event %d name = %q; want outbound.retry", i, ev.Name)
		}
		s := attribute.NewSet(ev.Attributes...)
		if v, _ := s.Value(AttrAttempt); v.AsInt64() != int64(i+1) {
			t.Errorf("event %d attempt = %v; want %d", i, v.String(), i+1)
		}
		if v, _ := s.Value(AttrDelay); v.AsFloat64() != float64(i+1)*0.1 {
			t.Errorf("event %d delay = %v; want %v", i, v.String(), float64(i+1)*0.1)
		}
		if v, _ := s.Value(AttrReason); v.AsString() != "status_503" {
			t.Errorf("event %d reason = %q; want status_503", i, v.AsString())
		}
	}

	for i, s := range attempts {
		if s.Parent().SpanID() != logical.SpanContext().SpanID() {
			t.Errorf("attempt %d parent = %s; want the logical span %s", i, s.Parent().SpanID(), logical.SpanContext().SpanID())
		}
		if got, want := s.Name(), "GET /v1/users/{id}"; got != want {
			t.Errorf("attempt %d name = %q; want %q", i, got, want)
		}
		v, ok := attr(s, semconv.HTTPRequestResendCountKey)
		switch {
		case i == 0 && ok:
			t.Errorf("first attempt has %s = %v; want absent", semconv.HTTPRequestResendCountKey, v.String())
		case i > 0 && (!ok || v.AsInt64() != int64(i)):
			t.Errorf("attempt %d %s = %v (present %v); want %d", i, semconv.HTTPRequestResendCountKey, v.String(), ok, i)
		}
		if v, _ := attr(s, semconv.URLTemplateKey); v.AsString() != "/v1/users/{id}" {
			t.Errorf("attempt %d url.template = %q", i, v.AsString())
		}
		wantCode := int64(503)
		if i == 2 {
			wantCode = 200
		}
		if v, _ := attr(s, semconv.HTTPResponseStatusCodeKey); v.AsInt64() != wantCode {
			t.Errorf("attempt %d status = %v; want %d", i, v.String(), wantCode)
		}
	}
	for _, s := range spans {
		if v, _ := attr(s, AttrRequestID); v.AsString() != "req-42" {
			t.Errorf("span %q (%v) %s = %q; want req-42", s.Name(), s.SpanKind(), AttrRequestID, v.AsString())
		}
	}

	ms := te.metrics(t)
	if n, total := histInt(t, ms[MetricCallAttempts]); n != 1 || total != 3 {
		t.Errorf("%s: count %d sum %d; want 1 call with 3 attempts", MetricCallAttempts, n, total)
	}
	if got := sum(t, ms[MetricRetries], AttrReason.String("status_503"), semconv.ServerAddress("api.example.com"), semconv.HTTPRequestMethodGet); got != 2 {
		t.Errorf("%s{reason=status_503} = %d; want 2", MetricRetries, got)
	}
	if got := sum(t, ms[MetricInFlight]); got != 0 {
		t.Errorf("%s = %d after the body was closed; want 0", MetricInFlight, got)
	}
	if n, _ := histFloat(t, ms["http.client.request.duration"]); n != 3 {
		t.Errorf("http.client.request.duration count = %d; want 3 (one per attempt)", n)
	}
	if n, _ := histFloat(t, ms[MetricCallDuration]); n != 1 {
		t.Errorf("%s count = %d; want 1", MetricCallDuration, n)
	}
	// Bounded cardinality: no metric attribute carries a URL or path.
	for name, m := range ms {
		forEachAttrSet(m, func(s attribute.Set) {
			for _, kv := range s.ToSlice() {
				if strings.Contains(kv.Value.String(), "/v1/users") {
					t.Errorf("metric %s has attribute %s=%q", name, kv.Key, kv.Value.String())
				}
			}
		})
	}
}

func TestSpanNameWithoutRoute(t *testing.T) {
	te := newTelemetry(t)
	rt := chain(contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) { return response(r, 200, ""), nil }),
		Middleware(te.opts()...), AttemptMiddleware(te.opts()...))
	for _, m := range []string{"GET", "POST", "PURGE"} {
		req, _ := http.NewRequest(m, "http://h/x/1", nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	var names []string
	for _, s := range te.spans.Ended() {
		names = append(names, s.Name())
	}
	// Inner (attempt) span ends first: body close ends the outer wrapper
	// after the inner one.
	want := []string{"GET", "GET", "POST", "POST", "HTTP", "HTTP"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("span names = %q; want %q", names, want)
	}
}

func TestSpansEndWithBody(t *testing.T) {
	for _, tc := range []struct {
		name   string
		finish func(io.ReadCloser)
	}{
		{"closed unread", func(b io.ReadCloser) { b.Close() }},
		{"read to EOF", func(b io.ReadCloser) { io.ReadAll(b) }},
		{"read to EOF then closed", func(b io.ReadCloser) { io.ReadAll(b); b.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			te := newTelemetry(t)
			rt := chain(contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) { return response(r, 200, "payload"), nil }),
				Middleware(te.opts()...), AttemptMiddleware(te.opts()...))
			req, _ := http.NewRequest("GET", "http://h/", nil)
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(te.spans.Ended()); n != 0 {
				t.Fatalf("%d spans ended before the body was done; want 0", n)
			}
			if got := sum(t, te.metrics(t)[MetricInFlight]); got != 1 {
				t.Fatalf("in flight = %d while the body is open; want 1", got)
			}
			tc.finish(resp.Body)
			if n := len(te.spans.Ended()); n != 2 {
				t.Fatalf("%d spans ended after the body was done; want 2", n)
			}
			if n := len(te.spans.Started()); n != 2 {
				t.Fatalf("%d spans started; want 2", n)
			}
			if got := sum(t, te.metrics(t)[MetricInFlight]); got != 0 {
				t.Fatalf("in flight = %d after the body was done; want 0", got)
			}
		})
	}
}

func TestErrorEndsSpans(t *testing.T) {
	te := newTelemetry(t)
	boom := errors.New("dial tcp: connection refused")
	rt := chain(contracttest.RoundTripFunc(func(*http.Request) (*http.Response, error) { return nil, boom }),
		Middleware(te.opts()...), AttemptMiddleware(te.opts()...))
	req, _ := http.NewRequest("GET", "http://h/", nil)
	resp, err := rt.RoundTrip(req)
	if resp != nil || !errors.Is(err, boom) {
		t.Fatalf("got (%v, %v); want (nil, %v)", resp, err, boom)
	}
	spans := te.spans.Ended()
	if len(spans) != 2 {
		t.Fatalf("ended spans = %d; want 2", len(spans))
	}
	for _, s := range spans {
		if s.Status().Code != codes.Error {
			t.Errorf("span %v status = %v; want Error", s.SpanKind(), s.Status())
		}
	}
	ms := te.metrics(t)
	if got := sum(t, ms[MetricInFlight]); got != 0 {
		t.Errorf("in flight = %d; want 0", got)
	}
	d := ms[MetricCallAttempts]
	forEachAttrSet(d, func(s attribute.Set) {
		if v, _ := s.Value(AttrStatusClass); v.AsString() != "error" {
			t.Errorf("status class = %q; want error", v.AsString())
		}
	})
}
