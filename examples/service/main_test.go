package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outboundhttp/outbound"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startService runs the service in front of upstream with cfg.
func startService(t *testing.T, upstream string, cfg outbound.Config) *httptest.Server {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	client, err := outbound.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	svc := &Service{Upstream: u, Client: client}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(func() {
		srv.Close()
		client.CloseIdleConnections()
	})
	return srv
}

func testConfig() outbound.Config {
	cfg := outbound.DefaultConfig()
	cfg.BackoffInitial = 5 * time.Millisecond
	cfg.BackoffMax = 20 * time.Millisecond
	cfg.TracingEnabled = false
	return cfg
}

type answer struct {
	OK        bool            `json:"ok"`
	Data      json.RawMessage `json:"data"`
	Error     string          `json:"error"`
	RequestID string          `json:"request_id"`
}

func get(t *testing.T, url string, header http.Header) (*http.Response, answer, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var a answer
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatalf("answer %q is not JSON: %v", raw, err)
	}
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	return resp, a, string(raw)
}

func TestProfileOK(t *testing.T) {
	var upstreamID atomic.Value
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamID.Store(r.Header.Get("X-Request-ID"))
		if r.URL.Path != "/v1/users/42" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, `{"id":42,"name":"Ada"}`)
	}))
	defer upstream.Close()
	svc := startService(t, upstream.URL, testConfig())

	resp, a, _ := get(t, svc.URL+"/profiles/42", http.Header{"X-Request-Id": {"inbound-id-1"}})
	if resp.StatusCode != 200 || !a.OK || string(a.Data) != `{"id":42,"name":"Ada"}` {
		t.Fatalf("got %d %+v", resp.StatusCode, a)
	}
	if got := upstreamID.Load(); got != "inbound-id-1" {
		t.Fatalf("upstream saw request ID %v; want the inbound one propagated", got)
	}
}

func TestUpstreamFailingGives502WithoutItsBody(t *testing.T) {
	var hits atomic.Int32
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "secret-upstream-detail", http.StatusBadGateway)
	}))
	defer upstream.Close()
	cfg := testConfig()
	cfg.CircuitEnabled = false
	svc := startService(t, upstream.URL, cfg)

	resp, a, raw := get(t, svc.URL+"/profiles/1", nil)
	if resp.StatusCode != http.StatusBadGateway || a.OK || a.RequestID == "" {
		t.Fatalf("got %d %s; want 502 with a request ID", resp.StatusCode, raw)
	}
	if strings.Contains(raw, "secret-upstream-detail") {
		t.Fatalf("answer %s leaks the upstream body", raw)
	}
	if hits.Load() != 4 {
		t.Fatalf("upstream hits = %d; want 4 attempts", hits.Load())
	}
}

func TestBudgetRunningOutGives504(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer upstream.Close()
	cfg := testConfig()
	cfg.TotalBudget = 150 * time.Millisecond
	cfg.CircuitWindow = time.Second
	svc := startService(t, upstream.URL, cfg)
	start := time.Now()
	resp, a, raw := get(t, svc.URL+"/profiles/1", nil)
	if resp.StatusCode != http.StatusGatewayTimeout || a.RequestID == "" {
		t.Fatalf("got %d %s; want 504 with a request ID", resp.StatusCode, raw)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("took %v; want about the 150ms budget", el)
	}
}

func TestInboundDeadlineHeaderShortensBudget(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer upstream.Close()
	svc := startService(t, upstream.URL, testConfig()) // 10 s budget of its own
	start := time.Now()
	resp, _, raw := get(t, svc.URL+"/profiles/1", http.Header{"Request-Timeout-Ms": {"150"}})
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("got %d %s; want 504", resp.StatusCode, raw)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("took %v; the inbound 150ms deadline was not honoured", el)
	}
}

func TestOpenBreakerGives503WithRetryAfter(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer upstream.Close()
	cfg := testConfig()
	cfg.CircuitMinRequests = 4
	cfg.CircuitBreakDuration = 30 * time.Second
	cfg.MaxAttempts = 1
	svc := startService(t, upstream.URL, cfg)

	var last *http.Response
	var raw string
	for i := 0; i < 10; i++ {
		last, _, raw = get(t, svc.URL+"/profiles/1", nil)
		if last.StatusCode == http.StatusServiceUnavailable {
			break
		}
	}
	if last.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("breaker never opened: last answer %d %s", last.StatusCode, raw)
	}
	if ra := last.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("Retry-After = %q; want the seconds until the next probe", ra)
	}
}
