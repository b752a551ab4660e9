package outbound

import (
	"context"
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

	"github.com/outboundhttp/outbound/transport/hedge"
	"github.com/outboundhttp/outbound/transport/tracing"
)

// straggling is an upstream whose requests answer at once, except the one
// numbered slow (from 1), which waits until its client gives up on it; it
// records that the client did.
type straggling struct {
	slow     int64
	n        atomic.Int64
	canceled chan struct{}
}

func (s *straggling) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.n.Add(1) == s.slow {
		<-r.Context().Done() // the loser: canceled when the hedge wins
		close(s.canceled)
		return
	}
	w.Write([]byte("ok"))
}

// hedgeCall makes one GET through c with a bounded deadline and returns how
// long it took.
func hedgeCall(t *testing.T, c *http.Client, url string) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	return time.Since(start)
}

func readBody(t *testing.T, resp *http.Response) {
	t.Helper()
	defer resp.Body.Close()
	buf := make([]byte, 16)
	n, _ := resp.Body.Read(buf)
	if resp.StatusCode != 200 || string(buf[:n]) != "ok" {
		t.Fatalf("got %d %q; want 200 ok", resp.StatusCode, buf[:n])
	}
}

// TestNewClientHedgeQuantile: the standard stack as DefaultConfig builds it
// (HedgeDelay = hedge.DefaultMinDelay, the quantile's floor, and
// HedgeQuantile = hedge.DefaultQuantile) learns the upstream's latency
// and, once it knows it, answers a call whose first attempt hangs with the
// hedge's response; the first attempt is canceled. The attempt span says
// "hedge" and the hedge metrics count it.
func TestNewClientHedgeQuantile(t *testing.T) {
	const warm = 40 // more than hedge.DefaultMinSamples
	up := &straggling{slow: warm + 1, canceled: make(chan struct{})}
	srv := httptest.NewServer(up)
	defer srv.Close()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer tp.Shutdown(context.Background())
	defer mp.Shutdown(context.Background())
	cfg := DefaultConfig()
	if cfg.HedgeDelay != hedge.DefaultMinDelay || cfg.HedgeQuantile != hedge.DefaultQuantile {
		t.Fatalf("DefaultConfig hedges after %v at quantile %v; want the hedge package's default", cfg.HedgeDelay, cfg.HedgeQuantile)
	}
	c := newTestClient(t, cfg, WithTracingOptions(tracing.WithTracerProvider(tp), tracing.WithMeterProvider(mp)))

	for range warm {
		hedgeCall(t, c, srv.URL)
	}
	if d := hedgeCall(t, c, srv.URL); d > 2*time.Second {
		t.Errorf("the call whose first attempt hung took %v; want the hedge's answer", d)
	}
	select {
	case <-up.canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("the losing first attempt was not canceled")
	}

	types := map[string]bool{}
	for _, s := range spans.Ended() {
		for _, a := range s.Attributes() {
			if a.Key == tracing.AttrAttemptType {
				types[a.Value.AsString()] = true
			}
		}
	}
	for _, want := range []string{"original", "hedge"} {
		if !types[want] {
			t.Errorf("no attempt span has %s = %q", tracing.AttrAttemptType, want)
		}
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	sums := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if d, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, p := range d.DataPoints {
					if v, _ := p.Attributes.Value(attribute.Key("outbound.reason")); m.Name != tracing.MetricHedgeWins || v.AsString() == "hedge" {
						sums[m.Name] += p.Value
					}
				}
			}
		}
	}
	// A warm-up call slower than the 1 ms floor (a dial, the race detector)
	// may get a hedge of its own, which usually loses.
	hedges, won := sums[tracing.MetricHedges], sums[tracing.MetricHedgeWins]
	if hedges < 1 || won < 1 || won > hedges {
		t.Errorf("hedges %d, won by a hedge %d; want at least 1 and 1", hedges, won)
	}
	if n := up.n.Load(); n < warm+2 || n > warm+1+hedges {
		t.Errorf("upstream saw %d requests for %d calls and %d hedges", n, warm+1, hedges)
	}
}

// TestNewClientHedgeLayer: DefaultConfig (HedgeDelay 1 ms, the p95) builds
// a hedge layer (the choice docs/hedge.md explains) and HedgeDelay 0 none; a
// fixed HedgeDelay does too, just below the retry layer, with nothing in
// between, so the two share one budget.
func TestNewClientHedgeLayer(t *testing.T) {
	if l := DefaultConfig().layers(nil); l[LayerHedge] == nil {
		t.Fatal("DefaultConfig built no hedge layer")
	}
	off := DefaultConfig()
	off.HedgeDelay = 0
	if l := off.layers(nil); l[LayerHedge] != nil {
		t.Fatal("HedgeDelay 0 built a hedge layer")
	}
	cfg := fastConfig()
	cfg.HedgeDelay, cfg.HedgeQuantile = 20*time.Millisecond, 0
	if l := cfg.layers(nil); l[LayerHedge] == nil {
		t.Fatal("a fixed HedgeDelay built no hedge layer")
	}
	if LayerHedge != LayerRetry+1 || LayerHedge.String() != "hedge" {
		t.Fatalf("LayerHedge = %d (%v); want just below LayerRetry", LayerHedge, LayerHedge)
	}
}

// TestNewClientFixedHedgeDelay: HedgeQuantile 0 hedges after HedgeDelay from
// the first call on, with no latencies known.
func TestNewClientFixedHedgeDelay(t *testing.T) {
	up := &straggling{slow: 1, canceled: make(chan struct{})}
	srv := httptest.NewServer(up)
	defer srv.Close()
	cfg := fastConfig()
	cfg.HedgeDelay, cfg.HedgeQuantile = 20*time.Millisecond, 0
	c := newTestClient(t, cfg)
	if d := hedgeCall(t, c, srv.URL); d < 20*time.Millisecond || d > 2*time.Second {
		t.Errorf("call took %v; want the hedge's answer, sent after 20ms", d)
	}
	select {
	case <-up.canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("the losing first attempt was not canceled")
	}
}

// TestNewClientNoHedgeForLocalWait: a call that waits in the stack's rate
// limiter longer than the hedge delay is not hedged: the delay counts from
// when the attempt leaves the client (net/http's GetConn), so the hedge
// layer sends nothing while its attempt waits for a token below it.
func TestNewClientNoHedgeForLocalWait(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer srv.Close()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	cfg := fastConfig()
	cfg.TracingEnabled = true
	cfg.RatePerSecond, cfg.RateBurst = 5, 1 // the second call waits about 200 ms for its token
	cfg.HedgeDelay, cfg.HedgeQuantile = 20*time.Millisecond, 0
	c := newTestClient(t, cfg, WithTracingOptions(tracing.WithMeterProvider(mp)))
	hedgeCall(t, c, srv.URL)
	if d := hedgeCall(t, c, srv.URL); d < 100*time.Millisecond {
		t.Fatalf("second call took %v; want it to wait for the rate limit", d)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if d, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == tracing.MetricHedges {
				for _, p := range d.DataPoints {
					if p.Value != 0 {
						t.Errorf("%d hedges sent for calls that waited in the client; want none", p.Value)
					}
				}
			}
		}
	}
}
