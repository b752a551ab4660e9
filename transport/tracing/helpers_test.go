package tracing

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/outboundhttp/outbound/internal/body"
	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/internal/contracttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// telemetry is an SDK tracer and meter provider with in-memory readers.
type telemetry struct {
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
}

func newTelemetry(t *testing.T) *telemetry {
	t.Helper()
	te := &telemetry{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	te.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(te.spans))
	te.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(te.reader))
	t.Cleanup(func() {
		te.tp.Shutdown(context.Background())
		te.mp.Shutdown(context.Background())
	})
	return te
}

func (te *telemetry) opts(more ...Option) []Option {
	return append([]Option{WithTracerProvider(te.tp), WithMeterProvider(te.mp)}, more...)
}

func (te *telemetry) metrics(t *testing.T) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := te.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// sum adds the values of a counter or up-down counter's points whose
// attributes include want.
func sum(t *testing.T, m metricdata.Metrics, want ...attribute.KeyValue) int64 {
	t.Helper()
	var n int64
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			if hasAll(p.Attributes, want) {
				n += p.Value
			}
		}
	default:
		t.Fatalf("%s: data %T; want Sum[int64]", m.Name, m.Data)
	}
	return n
}

// histInt returns count and sum of an int64 histogram.
func histInt(t *testing.T, m metricdata.Metrics) (count uint64, total int64) {
	t.Helper()
	d, ok := m.Data.(metricdata.Histogram[int64])
	if !ok {
		t.Fatalf("%s: data %T; want Histogram[int64]", m.Name, m.Data)
	}
	for _, p := range d.DataPoints {
		count += p.Count
		total += p.Sum
	}
	return count, total
}

func histFloat(t *testing.T, m metricdata.Metrics) (count uint64, total float64) {
	t.Helper()
	d, ok := m.Data.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("%s: data %T; want Histogram[float64]", m.Name, m.Data)
	}
	for _, p := range d.DataPoints {
		count += p.Count
		total += p.Sum
	}
	return count, total
}

func hasAll(s attribute.Set, want []attribute.KeyValue) bool {
	for _, kv := range want {
		v, ok := s.Value(kv.Key)
		if !ok || v != kv.Value {
			return false
		}
	}
	return true
}

func attr(s sdktrace.ReadOnlySpan, k attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if kv.Key == k {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

func response(req *http.Request, code int, b string) *http.Response {
	return &http.Response{
		StatusCode: code, Status: http.StatusText(code), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: io.NopCloser(strings.NewReader(b)), ContentLength: int64(len(b)), Request: req,
	}
}

// testRetry is a minimal retrying layer that behaves, towards the tracing
// layers, exactly as transport/retry does: each attempt's context carries
// callctx.WithAttempt(n), and before each resend it emits callctx.KindRetry
// with the number of the attempt about to be sent, the backoff delay and the
// reason the previous attempt failed. It does not sleep.
func testRetry(maxAttempts int, delay func(n int) time.Duration) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper {
		return contracttest.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			for n := 0; ; n++ {
				ctx := callctx.WithAttempt(req.Context(), n)
				resp, err := next.RoundTrip(req.WithContext(ctx))
				if err != nil || resp.StatusCode != http.StatusServiceUnavailable || n+1 == maxAttempts {
					return resp, err
				}
				body.Discard(resp)
				callctx.Emit(ctx, callctx.Event{Kind: callctx.KindRetry, Attempt: n + 1, Delay: delay(n + 1), Reason: "status_503"})
			}
		})
	}
}

// chain puts the first middleware outermost, like outbound.Chain.
func chain(base http.RoundTripper, mws ...func(http.RoundTripper) http.RoundTripper) http.RoundTripper {
	for i := len(mws) - 1; i >= 0; i-- {
		base = mws[i](base)
	}
	return base
}

func forEachAttrSet(m metricdata.Metrics, f func(attribute.Set)) {
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			f(p.Attributes)
		}
	case metricdata.Sum[float64]:
		for _, p := range d.DataPoints {
			f(p.Attributes)
		}
	case metricdata.Histogram[int64]:
		for _, p := range d.DataPoints {
			f(p.Attributes)
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			f(p.Attributes)
		}
	}
}
