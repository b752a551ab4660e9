package tracing_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/transport/retry"
	"github.com/outboundhttp/outbound/transport/tracing"
)

// TestWithRealRetry runs the two layers around transport/retry (not the test
// double of the internal tests) against a real server.
func TestWithRealRetry(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer tp.Shutdown(context.Background())
	defer mp.Shutdown(context.Background())
	opts := []tracing.Option{tracing.WithTracerProvider(tp), tracing.WithMeterProvider(mp)}
	base := &http.Transport{}
	defer base.CloseIdleConnections()

	rt := tracing.NewTransport(retry.NewTransport(tracing.NewAttemptTransport(base, opts...),
		retry.WithBackoff(time.Millisecond, 2*time.Millisecond)), opts...)
	req, _ := http.NewRequestWithContext(callctx.WithRequestID(context.Background(), "rid"), "GET", srv.URL, nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	var logical sdktrace.ReadOnlySpan
	var resends []int64
	for _, s := range spans.Ended() {
		if s.SpanKind() == trace.SpanKindInternal {
			logical = s
			continue
		}
		var rc int64
		for _, kv := range s.Attributes() {
			if kv.Key == semconv.HTTPRequestResendCountKey {
				rc = kv.Value.AsInt64()
			}
		}
		resends = append(resends, rc)
	}
	if logical == nil || len(resends) != 3 || resends[0] != 0 || resends[1] != 1 || resends[2] != 2 {
		t.Fatalf("logical span %v, resend counts %v; want a logical span and [0 1 2]", logical != nil, resends)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var attempts, retries int64
	var reason string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch m.Name {
			case tracing.MetricCallAttempts:
				for _, p := range m.Data.(metricdata.Histogram[int64]).DataPoints {
					attempts += p.Sum
				}
			case tracing.MetricRetries:
				for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
					retries += p.Value
					v, _ := p.Attributes.Value(attribute.Key("outbound.reason"))
					reason = v.AsString()
				}
			}
		}
	}
	if attempts != 3 || retries != 2 || reason != "status_502" {
		t.Errorf("attempts=%d retries=%d reason=%q; want 3, 2, status_502", attempts, retries, reason)
	}
}
