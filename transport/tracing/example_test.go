package tracing_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/outboundhttp/outbound/transport/retry"
	"github.com/outboundhttp/outbound/transport/tracing"
)

// A call retried twice: one logical span with the retry events, three CLIENT
// spans below it, the resends marked with http.request.resend_count.
func Example() {
	var calls atomic.Int32
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, `{"id":7}`)
	}))
	defer upstream.Close()

	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())
	opts := []tracing.Option{
		tracing.WithTracerProvider(tp),
		tracing.WithPropagators(propagation.TraceContext{}),
	}

	base := &http.Transport{}
	defer base.CloseIdleConnections()
	client := &http.Client{Transport: tracing.NewTransport( // logical span
		retry.NewTransport(
			tracing.NewAttemptTransport(base, opts...), // one CLIENT span per attempt
			retry.WithBackoffFunc(func(_, _ time.Duration, n int, _ *http.Response) time.Duration {
				return time.Duration(n+1) * 5 * time.Millisecond // fixed, for a stable output
			}),
		), opts...)}

	ctx := tracing.WithRoute(context.Background(), "/v1/users/{id}")
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, upstream.URL+"/v1/users/7", nil)
	resp, err := client.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close() // ends the spans

	printTree(spans.Ended())
	// Output:
	// GET /v1/users/{id} internal outbound.attempts=3 outbound.response.status_code=200
	//   event outbound.retry outbound.attempt=1 outbound.delay=0.005 outbound.reason=status_503
	//   event outbound.retry outbound.attempt=2 outbound.delay=0.01 outbound.reason=status_503
	//   GET /v1/users/{id} client http.response.status_code=503
	//   GET /v1/users/{id} client http.response.status_code=503 http.request.resend_count=1
	//   GET /v1/users/{id} client http.response.status_code=200 http.request.resend_count=2
}

// printTree prints spans as a tree with a few chosen attributes.
func printTree(ended []sdktrace.ReadOnlySpan) {
	sort.Slice(ended, func(i, j int) bool { return ended[i].StartTime().Before(ended[j].StartTime()) })
	show := []attribute.Key{"outbound.attempts", "outbound.response.status_code", "http.response.status_code", "http.request.resend_count"}
	line := func(s sdktrace.ReadOnlySpan) string {
		parts := []string{s.Name(), s.SpanKind().String()}
		for _, k := range show {
			for _, kv := range s.Attributes() {
				if kv.Key == k {
					parts = append(parts, fmt.Sprintf("%s=%s", k, kv.Value.String()))
				}
			}
		}
		return strings.Join(parts, " ")
	}
	var walk func(parent sdktrace.ReadOnlySpan, depth int)
	walk = func(parent sdktrace.ReadOnlySpan, depth int) {
		indent := strings.Repeat("  ", depth)
		fmt.Println(indent + line(parent))
		for _, ev := range parent.Events() {
			var kv []string
			for _, a := range ev.Attributes {
				if a.Key != "outbound.upstream" {
					kv = append(kv, fmt.Sprintf("%s=%s", a.Key, a.Value.String()))
				}
			}
			fmt.Println(indent + "  event " + ev.Name + " " + strings.Join(kv, " "))
		}
		for _, s := range ended {
			if s.Parent().SpanID() == parent.SpanContext().SpanID() {
				walk(s, depth+1)
			}
		}
	}
	for _, s := range ended {
		if !s.Parent().IsValid() {
			walk(s, 0)
		}
	}
}
