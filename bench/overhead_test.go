package bench

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/outboundhttp/outbound"
	"github.com/outboundhttp/outbound/transport/budget"
	"github.com/outboundhttp/outbound/transport/circuit"
	"github.com/outboundhttp/outbound/transport/header"
	"github.com/outboundhttp/outbound/transport/hedge"
	"github.com/outboundhttp/outbound/transport/ratelimit"
	"github.com/outboundhttp/outbound/transport/requestid"
	"github.com/outboundhttp/outbound/transport/retry"
	"github.com/outboundhttp/outbound/transport/tracing"
)

// memBase answers every request with a copy of a prebuilt 200 with no body:
// no network, one small allocation, the same for every stack.
type memBase struct{ resp http.Response }

func newMemBase() *memBase {
	return &memBase{resp: http.Response{
		Status: "200 OK", StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: http.NoBody, ContentLength: 0,
	}}
}

func (m *memBase) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	resp := m.resp
	resp.Request = r
	return &resp, nil
}

type providers struct {
	tp trace.TracerProvider
	mp metric.MeterProvider
}

// noopProviders are OpenTelemetry's no-op tracer and meter providers.
func noopProviders() providers {
	return providers{tracenoop.NewTracerProvider(), metricnoop.NewMeterProvider()}
}

// sdkProviders are the SDK as deployed minus the network: a batching span
// processor with an exporter that discards, and a metric reader that is never
// read (aggregation still runs on every measurement).
func sdkProviders(tb testing.TB) providers {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	tb.Cleanup(func() {
		tp.Shutdown(context.Background())
		mp.Shutdown(context.Background())
	})
	return providers{tp, mp}
}

func (p providers) tracing() []tracing.Option {
	return []tracing.Option{
		tracing.WithTracerProvider(p.tp), tracing.WithMeterProvider(p.mp),
		tracing.WithPropagators(propagation.TraceContext{}),
	}
}

func (p providers) otelhttp() []otelhttp.Option {
	return []otelhttp.Option{
		otelhttp.WithTracerProvider(p.tp), otelhttp.WithMeterProvider(p.mp),
		otelhttp.WithPropagators(propagation.TraceContext{}),
	}
}

// overheadCase is one row of the overhead table.
type overheadCase struct {
	name  string
	build func(tb testing.TB, base http.RoundTripper) http.RoundTripper
}

// overheadCases lists every stack measured by BenchmarkOverhead, in the order
// of the table in docs/perf/peers.md.
func overheadCases() []overheadCase {
	return []overheadCase{
		{"base", func(_ testing.TB, b http.RoundTripper) http.RoundTripper { return b }},
		{"floor/header-copy", func(_ testing.TB, b http.RoundTripper) http.RoundTripper { return HeaderCopy(b) }},

		{"outbound/5-layers", func(_ testing.TB, b http.RoundTripper) http.RoundTripper { return FiveLayers(b, Unlimited) }},
		{"outbound/stack", func(_ testing.TB, b http.RoundTripper) http.RoundTripper { return Standard(b, Unlimited) }},
		{"outbound/default", func(_ testing.TB, b http.RoundTripper) http.RoundTripper { return Default(b) }},
		{"outbound/default-untraced", func(_ testing.TB, b http.RoundTripper) http.RoundTripper { return DefaultClient(b) }},
		{"outbound/stack+tracing-noop", func(_ testing.TB, b http.RoundTripper) http.RoundTripper {
			return Traced(b, Unlimited, noopProviders().tracing()...)
		}},
		{"outbound/stack+tracing-sdk", func(tb testing.TB, b http.RoundTripper) http.RoundTripper {
			return Traced(b, Unlimited, sdkProviders(tb).tracing()...)
		}},

		{"outbound/requestid", func(_ testing.TB, b http.RoundTripper) http.RoundTripper { return requestid.NewTransport(b) }},
		{"outbound/budget", func(_ testing.TB, b http.RoundTripper) http.RoundTripper {
			return budget.NewTransport(b, budget.WithTotal(TotalBudget))
		}},
		{"outbound/retry", func(_ testing.TB, b http.RoundTripper) http.RoundTripper {
			return retry.NewTransport(b, retry.WithMaxAttempts(Attempts), retry.WithBackoff(BackoffInitial, BackoffMax))
		}},
		{"outbound/hedge", func(_ testing.TB, b http.RoundTripper) http.RoundTripper { return hedge.NewTransport(b) }},
		{"outbound/header", func(_ testing.TB, b http.RoundTripper) http.RoundTripper {
			return header.NewTransport(b, header.WithHeader("User-Agent", outbound.DefaultUserAgent))
		}},
		{"outbound/circuit", func(_ testing.TB, b http.RoundTripper) http.RoundTripper { return circuit.NewTransport(b) }},
		{"outbound/ratelimit", func(_ testing.TB, b http.RoundTripper) http.RoundTripper {
			return ratelimit.NewTransport(b, ratelimit.WithRate(Unlimited.PerSecond, Unlimited.Burst), ratelimit.WithConcurrency(Concurrency))
		}},
		{"outbound/tracing-noop", func(_ testing.TB, b http.RoundTripper) http.RoundTripper {
			o := noopProviders().tracing()
			return tracing.NewTransport(tracing.NewAttemptTransport(b, o...), o...)
		}},
		{"outbound/tracing-sdk", func(tb testing.TB, b http.RoundTripper) http.RoundTripper {
			o := sdkProviders(tb).tracing()
			return tracing.NewTransport(tracing.NewAttemptTransport(b, o...), o...)
		}},

		{"retryablehttp/retry", func(_ testing.TB, b http.RoundTripper) http.RoundTripper { return RetryableHTTP(b) }},
		{"failsafehttp/retry", func(_ testing.TB, b http.RoundTripper) http.RoundTripper { return FailsafeRetry(b) }},
		{"failsafehttp/retry+circuit+bulkhead", func(_ testing.TB, b http.RoundTripper) http.RoundTripper { return FailsafeFull(b) }},
		{"failsafehttp/as-default", func(_ testing.TB, b http.RoundTripper) http.RoundTripper { return FailsafeAsDefault(b) }},
		{"otelhttp/noop", func(_ testing.TB, b http.RoundTripper) http.RoundTripper {
			return otelhttp.NewTransport(b, noopProviders().otelhttp()...)
		}},
		{"otelhttp/sdk", func(tb testing.TB, b http.RoundTripper) http.RoundTripper {
			return otelhttp.NewTransport(b, sdkProviders(tb).otelhttp()...)
		}},
	}
}

// newBenchRequest is the request every overhead benchmark sends: a GET with
// one header and no body, no request ID in its context.
func newBenchRequest(tb testing.TB) *http.Request {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://api.example.com/v1/things/7", nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	return req
}

// BenchmarkOverhead is the success path of every stack over the same
// in-memory base, in one run: subtract the base row to get what a stack adds
// per request.
func BenchmarkOverhead(b *testing.B) {
	for _, c := range overheadCases() {
		b.Run(c.name, func(b *testing.B) {
			rt := c.build(b, newMemBase())
			req := newBenchRequest(b)
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				resp, err := rt.RoundTrip(req)
				if err != nil || resp.StatusCode != 200 {
					b.Fatal(resp, err)
				}
				resp.Body.Close()
			}
			cpu.report(b)
		})
	}
}

// TestOverheadStacksSucceed checks that every benchmarked stack answers the
// benchmark request with the base's 200 and leaves the request untouched, so
// the benchmarks measure a working success path.
func TestOverheadStacksSucceed(t *testing.T) {
	for _, c := range overheadCases() {
		t.Run(c.name, func(t *testing.T) {
			base := newMemBase()
			var seen int
			rt := c.build(t, roundTripFunc(func(r *http.Request) (*http.Response, error) {
				seen++
				return base.RoundTrip(r)
			}))
			req := newBenchRequest(t)
			for range 3 {
				resp, err := rt.RoundTrip(req)
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("RoundTrip = %v, %v; want 200", resp, err)
				}
				resp.Body.Close()
			}
			if seen != 3 {
				t.Fatalf("base saw %d requests for 3 calls", seen)
			}
			if len(req.Header) != 1 || req.Header.Get("Accept") != "application/json" {
				t.Fatalf("caller's request modified: %v", req.Header)
			}
		})
	}
}

// TestSameWorkRowsSendHeaders checks that the rows measured as the same work
// as outbound's request-ID layer (floor/header-copy) and as
// NewClient(DefaultConfig()) (failsafehttp/as-default) send what those send:
// an X-Request-ID, a new UUID on every call for the peer's, and the User-Agent.
func TestSameWorkRowsSendHeaders(t *testing.T) {
	for _, c := range []struct {
		name      string
		build     func(http.RoundTripper) http.RoundTripper
		fresh     bool // a new ID per call
		userAgent string
	}{
		{"floor/header-copy", HeaderCopy, false, ""},
		{"failsafehttp/as-default", FailsafeAsDefault, true, outbound.DefaultUserAgent},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := newMemBase()
			var ids []string
			rt := c.build(roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if got := r.Header.Get("User-Agent"); got != c.userAgent {
					t.Errorf("User-Agent = %q; want %q", got, c.userAgent)
				}
				ids = append(ids, r.Header.Get("X-Request-ID"))
				return base.RoundTrip(r)
			}))
			req := newBenchRequest(t)
			for range 2 {
				resp, err := rt.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}
			if len(ids) != 2 || ids[0] == "" || (ids[0] != ids[1]) == !c.fresh {
				t.Fatalf("X-Request-ID of two calls = %q; want set, new per call: %v", ids, c.fresh)
			}
			if len(req.Header) != 1 {
				t.Fatalf("caller's request modified: %v", req.Header)
			}
		})
	}
}

// cpuMeter reports the process CPU time per operation of a benchmark loop
// as cpu-ns/op, next to the wall-clock ns/op. On a machine shared with other
// jobs, wall time stretches while the benchmark waits for a core and CPU
// time does not, so make bench takes its ratios from cpu-ns/op.
type cpuMeter struct {
	start time.Duration
	ok    bool
}

func startCPU() cpuMeter {
	t, ok := processCPU()
	return cpuMeter{t, ok}
}

func (m cpuMeter) report(b *testing.B) {
	if t, ok := processCPU(); ok && m.ok && b.N > 0 {
		b.ReportMetric(float64(t-m.start)/float64(b.N), "cpu-ns/op")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
