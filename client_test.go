package outbound

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/outboundhttp/outbound/transport/base"
	"github.com/outboundhttp/outbound/transport/budget"
	"github.com/outboundhttp/outbound/transport/ratelimit"
	"github.com/outboundhttp/outbound/transport/tracing"
)

// fastConfig is DefaultConfig with waits short enough for tests.
func fastConfig() Config {
	cfg := DefaultConfig()
	cfg.BackoffInitial = 5 * time.Millisecond
	cfg.BackoffMax = 20 * time.Millisecond
	cfg.TracingEnabled = false
	return cfg
}

func newTestClient(t *testing.T, cfg Config, opts ...ClientOption) *http.Client {
	t.Helper()
	c, err := NewClient(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func TestNewClientDefaultConfig(t *testing.T) {
	var seen http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
		io.WriteString(w, `{"ok":true}`)
	}))
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.APIKey = "sk-test"
	c := newTestClient(t, cfg)
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != `{"ok":true}` {
		t.Fatalf("body %q", b)
	}
	if seen.Get("X-Request-ID") == "" || seen.Get("User-Agent") != "outbound/1" || seen.Get("Authorization") != "Bearer sk-test" {
		t.Fatalf("upstream saw headers %v; want a request ID, the user agent and the key", seen)
	}
}

func TestNewClientReportsEveryProblem(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxAttempts = 0
	cfg.TotalBudget = -1
	cfg.QueueTimeout = -1
	_, err := NewClient(cfg, WithoutLayer(Layer(99)))
	var ce *ConfigError
	if !errors.As(err, &ce) || len(ce.Problems) < 3 {
		t.Fatalf("err = %v; want a ConfigError listing every problem", err)
	}
	if _, err := NewClient(DefaultConfig(), WithoutLayer(Layer(99))); err == nil || !strings.Contains(err.Error(), "unknown layer") {
		t.Fatalf("err = %v; want unknown layer", err)
	}
}

// The order is checked by behaviour: the request ID sits outside retry (one
// ID on every attempt), the budget outside retry (it bounds all attempts),
// the rate limit inside it (every attempt takes a token).
func TestNewClientOrderByBehaviour(t *testing.T) {
	var mu sync.Mutex
	var ids []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ids = append(ids, r.Header.Get("X-Request-ID"))
		mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()

	t.Run("one request ID across attempts", func(t *testing.T) {
		ids = nil
		cfg := fastConfig()
		cfg.CircuitEnabled = false
		c := newTestClient(t, cfg)
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if len(ids) != 4 {
			t.Fatalf("attempts = %d; want 4", len(ids))
		}
		for _, id := range ids {
			if id != ids[0] || id == "" {
				t.Fatalf("request IDs %v; want one ID on every attempt", ids)
			}
		}
	})

	t.Run("budget covers retries", func(t *testing.T) {
		cfg := fastConfig()
		cfg.CircuitEnabled = false
		cfg.TotalBudget = 150 * time.Millisecond
		cfg.BackoffInitial = 100 * time.Millisecond
		cfg.BackoffMax = 100 * time.Millisecond
		cfg.MaxAttempts = 10
		cfg.RetryBudgetRatio = 0
		cfg.CircuitWindow = time.Second
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(400 * time.Millisecond):
			case <-r.Context().Done():
			}
			w.WriteHeader(http.StatusServiceUnavailable)
		}))
		defer slow.Close()
		if _, err := NewClient(cfg, WithBase(http.DefaultTransport)); err == nil {
			t.Fatal("a budget shorter than the backoff sum was accepted")
		}
		// Two attempts of 400 ms each would take 800 ms or more without the
		// budget; with it the call ends near 150 ms.
		cfg.MaxAttempts = 2
		c := newTestClient(t, cfg)
		start := time.Now()
		resp, err := c.Get(slow.URL)
		elapsed := time.Since(start)
		if err == nil {
			resp.Body.Close()
		}
		if elapsed > 700*time.Millisecond {
			t.Fatalf("call took %v; the 150ms budget did not bound the retries", elapsed)
		}
	})

	t.Run("rate limit applies per attempt", func(t *testing.T) {
		ids = nil
		cfg := fastConfig()
		cfg.CircuitEnabled = false
		cfg.RatePerSecond = 0.1 // no refill during the test
		cfg.RateBurst = 2
		cfg.TotalBudget = 2 * time.Second // a 10 s wait for a token cannot fit
		c := newTestClient(t, cfg)
		// The third attempt is refused by the limiter: the caller gets the
		// second attempt's 503, and only the burst reached the server.
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatalf("err = %v; want the last 503", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || len(ids) != 2 {
			t.Fatalf("got %v after %d attempts; want 503 after 2 (the burst)", resp.Status, len(ids))
		}
		// A call whose first attempt is refused gets the refusal.
		_, err = c.Get(srv.URL)
		if !errors.Is(err, ratelimit.ErrLimited) {
			t.Fatalf("err = %v; want ErrLimited", err)
		}
		if got := StatusFor(err); got != http.StatusServiceUnavailable {
			t.Fatalf("StatusFor = %d; want 503", got)
		}
	})
}

func TestNewClientLayerOptions(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("X-Seen", r.Header.Get("X-Extra"))
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	extra := func(next http.RoundTripper) http.RoundTripper {
		return RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
			r2 := r.Clone(r.Context())
			r2.Header.Set("X-Extra", "yes")
			return next.RoundTrip(r2)
		})
	}
	c := newTestClient(t, fastConfig(), WithoutLayer(LayerRetry), WithMiddlewareAfter(LayerHeader, extra))
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if hits.Load() != 1 || resp.Header.Get("X-Seen") != "yes" {
		t.Fatalf("hits %d, extra header %q; want 1 attempt (no retry layer) and the extra middleware", hits.Load(), resp.Header.Get("X-Seen"))
	}
}

func TestNewClientBudgetExhaustedMapsTo504(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer srv.Close()
	cfg := fastConfig()
	cfg.TotalBudget = 100 * time.Millisecond
	cfg.CircuitWindow = time.Second
	c := newTestClient(t, cfg)
	_, err := c.Get(srv.URL)
	if !errors.Is(err, budget.ErrExhausted) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v; want ErrExhausted and DeadlineExceeded", err)
	}
	if got := StatusFor(err); got != http.StatusGatewayTimeout {
		t.Fatalf("StatusFor = %d; want 504", got)
	}
}

// An attempt that runs out of its own time (AttemptTimeout) is a timeout for
// the caller: it matches context.DeadlineExceeded and maps to 504.
func TestNewClientAttemptTimeoutIsATimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer srv.Close()
	cfg := fastConfig()
	cfg.AttemptTimeout = 50 * time.Millisecond
	cfg.MaxAttempts = 2
	cfg.CircuitWindow = time.Second
	c := newTestClient(t, cfg)
	_, err := c.Get(srv.URL)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v; want it to match context.DeadlineExceeded", err)
	}
	if got := StatusFor(err); got != http.StatusGatewayTimeout {
		t.Fatalf("StatusFor(%v) = %d; want 504", err, got)
	}
}

// A redirect hop keeps the call's budget, not what is left of the previous
// attempt's AttemptTimeout.
func TestNewClientRedirectKeepsBudgetWithAttemptTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/start" {
			<-time.After(400 * time.Millisecond)
			http.Redirect(w, r, "/next", http.StatusFound)
			return
		}
		<-time.After(200 * time.Millisecond)
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	cfg := fastConfig()
	cfg.AttemptTimeout = 500 * time.Millisecond
	c := newTestClient(t, cfg)
	resp, err := c.Get(srv.URL + "/start")
	if err != nil {
		t.Fatalf("redirected call failed: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" {
		t.Fatalf("body %q", b)
	}
}

// MaxAttempts 1 turns retries off but keeps the attempt timeout and header.
func TestNewClientOneAttemptKeepsAttemptSettings(t *testing.T) {
	var hits atomic.Int32
	var header atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		header.Store(r.Header.Get("X-Attempt"))
		select {
		case <-time.After(600 * time.Millisecond):
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	cfg := fastConfig()
	cfg.MaxAttempts = 1
	cfg.AttemptTimeout = 100 * time.Millisecond
	cfg.AttemptHeader = "X-Attempt"
	cfg.CircuitWindow = time.Second
	c := newTestClient(t, cfg)
	start := time.Now()
	_, err := c.Get(srv.URL)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("err %v after %v; want the 100ms attempt timeout", err, time.Since(start))
	}
	if hits.Load() != 1 || header.Load() != "0" {
		t.Fatalf("hits %d, X-Attempt %v; want 1 attempt carrying X-Attempt: 0", hits.Load(), header.Load())
	}
}

// TestNewClientRecordsConcurrencyGauges: DefaultConfig's adaptive limit
// reports its limit, queue and baseline latency per upstream through the
// meter provider given to the tracing layers.
func TestNewClientRecordsConcurrencyGauges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		base := RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
			time.Sleep(20 * time.Millisecond)
			return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
		})
		c, err := NewClient(DefaultConfig(), WithBase(base), WithTracingOptions(tracing.WithMeterProvider(mp)))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				for range 10 {
					resp, err := c.Get("http://orders.internal/v1/orders/1")
					if err != nil {
						t.Error(err)
						return
					}
					resp.Body.Close()
				}
			})
		}
		wg.Wait()
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch d := m.Data.(type) {
				case metricdata.Gauge[int64]:
					for _, p := range d.DataPoints {
						if k, _ := p.Attributes.Value(tracing.AttrUpstream); k.AsString() == "http://orders.internal:80" {
							got[m.Name] = float64(p.Value)
						}
					}
				case metricdata.Gauge[float64]:
					for _, p := range d.DataPoints {
						got[m.Name] = p.Value
					}
				}
			}
		}
		if v, ok := got[tracing.MetricConcurrencyLimit]; !ok || v < 20 || v > 100 {
			t.Errorf("%s = %v (recorded %v); want within [20, 100]", tracing.MetricConcurrencyLimit, v, ok)
		}
		if v, ok := got[tracing.MetricConcurrencyQueued]; !ok || v < 0 {
			t.Errorf("%s = %v (recorded %v); want recorded", tracing.MetricConcurrencyQueued, v, ok)
		}
		if v := got[tracing.MetricConcurrencyBaseline]; v < 0.020 || v > 0.021 {
			t.Errorf("%s = %vs; want the upstream's 20 ms", tracing.MetricConcurrencyBaseline, v)
		}
	})
}

// TestNewClientCountsSharedLimiterFallbacks: a shared limiter that cannot
// reach its store (redisrate with Redis down) and decides locally shows in
// the metrics NewClient sets up, so the degraded mode is visible without an
// Observer of one's own.
func TestNewClientCountsSharedLimiterFallbacks(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	storeDown := errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
	shared := ratelimit.LimiterFunc(func(context.Context, string) (ratelimit.Result, error) {
		return ratelimit.Result{Allowed: true, Fallback: storeDown}, nil
	})
	base := RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
	})
	c, err := NewClient(DefaultConfig(), WithBase(base), WithTracingOptions(tracing.WithMeterProvider(mp)),
		WithMiddlewareAfter(LayerRateLimit, ratelimit.Middleware(ratelimit.WithSharedLimiter(shared))))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		resp, err := c.Get("http://orders.internal/v1/orders/1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var fallbacks int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == tracing.MetricRateLimitFallbacks {
				for _, p := range sum.DataPoints {
					fallbacks += p.Value
				}
			}
		}
	}
	if fallbacks != 3 {
		t.Fatalf("%s = %d; want 3, one per call decided without the shared store", tracing.MetricRateLimitFallbacks, fallbacks)
	}
}

// TestNewClientWriteTimeoutRetriesWithBody: an upload the upstream stops
// reading ends at Config.WriteTimeout with ErrWriteTimeout instead of holding
// the attempt until the budget, and the retry replays the whole body through
// GetBody: the second attempt delivers every byte the caller sent.
func TestNewClientWriteTimeoutRetriesWithBody(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB: more than the socket buffers hold
	var attempts atomic.Int32
	var got atomic.Int64
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if attempts.Add(1) == 1 {
			io.ReadFull(r.Body, make([]byte, 1024)) // then stop reading, and never answer
			select {
			case <-r.Context().Done():
			case <-stop:
			}
			return
		}
		n, _ := io.Copy(io.Discard, r.Body)
		got.Store(n)
		io.WriteString(w, "stored")
	}))
	defer srv.Close()
	defer close(stop)
	cfg := fastConfig()
	cfg.WriteTimeout = 200 * time.Millisecond
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/v1/blobs/7", bytes.NewReader(payload))
	start := time.Now()
	resp, err := newTestClient(t, cfg).Do(req)
	if err != nil {
		t.Fatalf("PUT: %v; want the retried attempt to succeed", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || attempts.Load() != 2 || got.Load() != int64(len(payload)) {
		t.Fatalf("status %d after %d attempts, %d of %d bytes delivered; want 200 after 2 attempts with every byte",
			resp.StatusCode, attempts.Load(), got.Load(), len(payload))
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("took %v; the write timeout should have ended the first attempt after 200 ms", took)
	}

	// With one attempt, the error says it was the write.
	cfg.MaxAttempts = 1
	attempts.Store(0)
	req, _ = http.NewRequest(http.MethodPut, srv.URL+"/v1/blobs/8", bytes.NewReader(payload))
	_, err = newTestClient(t, cfg).Do(req)
	if !errors.Is(err, base.ErrWriteTimeout) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("single attempt: got %v; want ErrWriteTimeout, matching os.ErrDeadlineExceeded", err)
	}
}
