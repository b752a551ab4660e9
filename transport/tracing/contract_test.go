package tracing

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/outboundhttp/outbound/internal/callctx"
)

// bothLayers is the stack under contract test: logical span, a retrying
// layer, attempt span.
func bothLayers(te *telemetry, base http.RoundTripper) http.RoundTripper {
	return chain(base,
		Middleware(te.opts()...),
		testRetry(3, func(int) time.Duration { return 0 }),
		AttemptMiddleware(te.opts(WithPropagators(propagation.TraceContext{}))...))
}

type trackedBody struct {
	io.Reader
	closed atomic.Bool
}

func (b *trackedBody) Close() error { b.closed.Store(true); return nil }

func TestContractRequestNotModified(t *testing.T) {
	te := newTelemetry(t)
	var seen http.Header
	rt := bothLayers(te, roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen = r.Header.Clone()
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		return response(r, 200, ""), nil
	}))
	type ctxKey struct{}
	ctx := context.WithValue(context.Background(), ctxKey{}, 1)
	b := &trackedBody{Reader: strings.NewReader("payload")}
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://u:p@h/x?q=1", b)
	req.Header.Set("X-Test", "1")
	before := *req
	beforeURL := *req.URL
	beforeHeader := req.Header.Clone()

	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if seen.Get("Traceparent") == "" {
		t.Fatal("base saw no traceparent; the test would prove nothing")
	}
	if !reflect.DeepEqual(req.Header, beforeHeader) {
		t.Errorf("caller's header changed: %v; want %v", req.Header, beforeHeader)
	}
	if *req.URL != beforeURL || req.Method != before.Method || req.Context() != ctx || req.Body != before.Body {
		t.Error("caller's request was modified")
	}
	if !b.closed.Load() {
		t.Error("request body not closed")
	}
}

func TestContractResponseAndError(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name    string
		base    roundTripFunc
		wantErr bool
	}{
		{"response and error", func(r *http.Request) (*http.Response, error) { return response(r, 200, "x"), boom }, true},
		{"nil and nil", func(*http.Request) (*http.Response, error) { return nil, nil }, true},
		{"nil body", func(r *http.Request) (*http.Response, error) {
			resp := response(r, 204, "")
			resp.Body = nil
			return resp, nil
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			te := newTelemetry(t)
			for _, rt := range []http.RoundTripper{
				bothLayers(te, tc.base),
				NewTransport(tc.base, te.opts()...),
				NewAttemptTransport(tc.base, te.opts()...),
			} {
				req, _ := http.NewRequest("GET", "http://h/", nil)
				resp, err := rt.RoundTrip(req)
				if tc.wantErr {
					if resp != nil || err == nil {
						t.Errorf("%T: got (%v, %v); want (nil, error)", rt, resp, err)
					}
					continue
				}
				if err != nil || resp == nil || resp.Body == nil {
					t.Fatalf("%T: got (%v, %v); want a response with a non-nil body", rt, resp, err)
				}
				resp.Body.Close()
			}
			if n, m := len(te.spans.Started()), len(te.spans.Ended()); n != m {
				t.Errorf("%d spans started, %d ended; want all ended", n, m)
			}
			if got := sum(t, te.metrics(t)[MetricInFlight]); got != 0 {
				t.Errorf("in flight = %d; want 0", got)
			}
		})
	}
}

func TestContractContext(t *testing.T) {
	te := newTelemetry(t)
	type ctxKey struct{}
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
	rt := bothLayers(te, roundTripFunc(func(r *http.Request) (*http.Response, error) {
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

type idleCloser struct {
	roundTripFunc
	closed int
}

func (c *idleCloser) CloseIdleConnections() { c.closed++ }

func TestCloseIdleConnections(t *testing.T) {
	base := &idleCloser{}
	NewTransport(base).CloseIdleConnections()
	NewAttemptTransport(base).CloseIdleConnections()
	if base.closed != 2 {
		t.Errorf("CloseIdleConnections forwarded %d times; want 2", base.closed)
	}
}

type rwc struct{ io.Reader }

func (rwc) Write(p []byte) (int, error) { return len(p), nil }
func (rwc) Close() error                { return nil }

func TestSwitchingProtocolsKeepsWriter(t *testing.T) {
	te := newTelemetry(t)
	rt := chain(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp := response(r, 101, "")
		resp.Body = rwc{strings.NewReader("x")}
		return resp, nil
	}), Middleware(te.opts()...), AttemptMiddleware(te.opts()...))
	req, _ := http.NewRequest("GET", "http://h/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := resp.Body.(io.Writer); !ok {
		t.Errorf("101 body %T lost io.Writer", resp.Body)
	}
	resp.Body.Close()
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
