package tracing

import (
	"context"
	"net/http"
	"testing"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/outboundhttp/outbound/internal/callctx"
)

// inMemory returns a copy of a prebuilt response: no network, one small
// allocation, the same for every benchmark.
type inMemory struct{ resp http.Response }

func (m *inMemory) RoundTrip(r *http.Request) (*http.Response, error) {
	resp := m.resp
	resp.Request = r
	return &resp, nil
}

func newInMemory() *inMemory {
	return &inMemory{resp: http.Response{StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}, Body: http.NoBody}}
}

type providers struct {
	name string
	tp   trace.TracerProvider
	mp   metric.MeterProvider
}

func benchProviders(b *testing.B) []providers {
	// The SDK as deployed, minus the network: batching span processor with
	// an exporter that discards, and a metric reader that is never read
	// (aggregation still runs on every measurement).
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		tp.Shutdown(context.Background())
		mp.Shutdown(context.Background())
	})
	return []providers{
		{"noop", tracenoop.NewTracerProvider(), metricnoop.NewMeterProvider()},
		{"sdk", tp, mp},
	}
}

func runBench(b *testing.B, rt http.RoundTripper, ctx context.Context) {
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://api.example.com/v1/users/7?page=2", nil)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := rt.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}

// BenchmarkTracing compares, in one run: the bare in-memory base; otelhttp
// alone; the attempt layer alone; and the logical + attempt layers — each
// with no-op providers and with the SDK.
func BenchmarkTracing(b *testing.B) {
	ctx := callctx.WithRequestID(context.Background(), "0b8f3c3e-5c1a-4b7e-9d7e-2f1f0c7e4a11")
	ctx = WithRoute(ctx, "/v1/users/{id}")
	b.Run("base", func(b *testing.B) { runBench(b, newInMemory(), ctx) })
	for _, p := range benchProviders(b) {
		prop := propagation.TraceContext{}
		b.Run("otelhttp/"+p.name, func(b *testing.B) {
			runBench(b, otelhttp.NewTransport(newInMemory(),
				otelhttp.WithTracerProvider(p.tp), otelhttp.WithMeterProvider(p.mp), otelhttp.WithPropagators(prop)), ctx)
		})
		opts := []Option{WithTracerProvider(p.tp), WithMeterProvider(p.mp), WithPropagators(prop)}
		b.Run("attempt/"+p.name, func(b *testing.B) {
			runBench(b, NewAttemptTransport(newInMemory(), opts...), ctx)
		})
		b.Run("logical+attempt/"+p.name, func(b *testing.B) {
			runBench(b, NewTransport(NewAttemptTransport(newInMemory(), opts...), opts...), ctx)
		})
	}
}
