package otelsetup

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outboundhttp/outbound"
	"github.com/outboundhttp/outbound/transport/circuit"
	"github.com/outboundhttp/outbound/transport/tracing"
)

// The secrets the retried call carries, none of which may reach Jaeger: the
// API key (sent as Authorization: Bearer), an API key header, the URL's
// userinfo and a query token.
const (
	secretAPIKey   = "s3cret-api-key"
	secretHeader   = "s3cret-header-key"
	secretPassword = "s3cret-password"
	secretToken    = "s3cret-query-token"
)

// TestJaegerEndToEnd sends one retried call, then one call refused by an
// open breaker, through NewClient with otelsetup's OTLP/HTTP exporter
// pointed at a real Jaeger, and reads them back from Jaeger's query API: the
// trace shape docs/telemetry.md promises, as a tracing backend stores it.
// make test starts Jaeger (scripts/with-jaeger.sh sets JAEGER_OTLP_ENDPOINT
// and JAEGER_QUERY_URL); without it the test skips.
func TestJaegerEndToEnd(t *testing.T) {
	otlp, query := os.Getenv("JAEGER_OTLP_ENDPOINT"), os.Getenv("JAEGER_QUERY_URL")
	if otlp == "" || query == "" {
		t.Skip("JAEGER_OTLP_ENDPOINT and JAEGER_QUERY_URL are not set (make test sets them: scripts/with-jaeger.sh)")
	}
	waitForJaeger(t, os.Getenv("JAEGER_STATE"))
	clearEnv(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp)
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	// A service of its own, so a Jaeger that outlives one run (by hand)
	// never mixes the traces of two.
	service := fmt.Sprintf("outbound-e2e-%d", time.Now().UnixNano())
	t.Setenv("OTEL_SERVICE_NAME", service)
	retriedID, refusedID := service+"-retried", service+"-refused"

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := Setup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())

	// Upstream a answers the first request 503 and the others 200; b is
	// down (503 always), so its breaker opens.
	var aHits atomic.Int32
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if aHits.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer a.Close()
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer b.Close()

	cfg := outbound.DefaultConfig()
	cfg.APIKey = secretAPIKey
	// The breaker opens after 2 attempts (not the default 20), and a call
	// it refuses fails at once instead of waiting for its probe: one refusal
	// in a few milliseconds. Nothing else differs from DefaultConfig.
	cfg.CircuitMinRequests = 2
	cfg.WaitForBreaker = false
	hc, err := outbound.NewClient(cfg, outbound.WithTracingOptions(p.TracingOptions()...))
	if err != nil {
		t.Fatal(err)
	}
	defer hc.CloseIdleConnections()
	route := tracing.WithRoute(ctx, "/v1/users/{id}")

	// The retried call.
	au, _ := url.Parse(a.URL + "/v1/users/7?token=" + secretToken + "&page=2")
	au.User = url.UserPassword("e2e-user", secretPassword)
	resp, err := send(route, hc, au.String(), retriedID)
	if err != nil || resp != http.StatusOK {
		t.Fatalf("retried call: status %d, %v; want 200 after one retry", resp, err)
	}
	if n := aHits.Load(); n != 2 {
		t.Fatalf("upstream a got %d requests; want 2 (one retry)", n)
	}

	// Open b's breaker, then the refused call.
	opened := false
	for i := range 5 {
		_, err := send(route, hc, b.URL+"/v1/users/8", fmt.Sprintf("%s-opening-%d", service, i))
		if errors.Is(err, circuit.ErrOpen) {
			opened = true
			break
		}
	}
	if !opened {
		t.Fatal("b's breaker did not open after 5 calls to an upstream that answers 503")
	}
	if _, err := send(route, hc, b.URL+"/v1/users/9", refusedID); !errors.Is(err, circuit.ErrOpen) {
		t.Fatalf("refused call: %v; want circuit.ErrOpen", err)
	}
	if err := p.Shutdown(ctx); err != nil { // flushes the batch exporter
		t.Fatalf("Shutdown: %v", err)
	}

	// Spans reach the query API a moment after the export: poll, with the
	// test's deadline as the bound.
	var traces jaegerTraces
	var raw []byte
	qc := &http.Client{Transport: &http.Transport{}}
	defer qc.CloseIdleConnections()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		traces, raw, err = queryTraces(ctx, qc, query, service)
		if err == nil && traces.withRequestID(retriedID).spans() >= 3 && len(traces.withRequestID(refusedID)) > 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("Jaeger did not show the two calls in time (last error %v); it has:\n%s", err, raw)
		case <-tick.C:
		}
	}

	for _, e := range checkRetried(traces.withRequestID(retriedID), retriedID) {
		t.Error("retried call: " + e)
	}
	for _, e := range checkRefused(traces.withRequestID(refusedID), refusedID) {
		t.Error("refused call: " + e)
	}
	basic := base64.StdEncoding.EncodeToString([]byte("e2e-user:" + secretPassword))
	for _, s := range []string{secretAPIKey, secretHeader, secretPassword, secretToken, basic} {
		if strings.Contains(string(raw), s) {
			t.Errorf("Jaeger's traces contain the secret %q", s)
		}
	}
	if t.Failed() {
		t.Logf("Jaeger's answer:\n%s", raw)
	}
}

// waitForJaeger waits until with-jaeger.sh's state file says Jaeger
// listens, failing the test if it says the build or the start failed. A cold
// build of Jaeger may still be running when this package's tests start, so
// the wait is bounded by the test binary's deadline (go test -timeout), not
// by a guess at the build time.
func waitForJaeger(t *testing.T, state string) {
	t.Helper()
	if state == "" {
		return // a Jaeger started by hand: it listens already
	}
	deadline, ok := t.Deadline()
	if !ok {
		deadline = time.Now().Add(15 * time.Minute)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline.Add(-30*time.Second))
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for {
		b, err := os.ReadFile(state)
		switch st := string(b); {
		case err != nil:
			t.Fatalf("with-jaeger.sh's state: %v", err)
		case strings.HasPrefix(st, "ready"):
			if d := time.Since(start); d > time.Second {
				t.Logf("waited %v for Jaeger to be built and started", d.Round(time.Second))
			}
			return
		case strings.HasPrefix(st, "failed"):
			t.Fatalf("with-jaeger.sh: %s", st)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("Jaeger was not built and started within %v (with-jaeger.sh's state: building)", time.Since(start).Round(time.Second))
		case <-tick.C:
		}
	}
}

// send makes one GET with the request ID id and an API key header, reads the
// body and returns the status.
func send(ctx context.Context, hc *http.Client, u, id string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Request-ID", id)
	req.Header.Set("X-API-Key", secretHeader)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// checkRetried lists what the retried call's traces lack: one trace, the
// logical span (a root, INTERNAL) parent of one CLIENT span per attempt,
// resend count on the resend only, the retry event with delay and reason,
// the request ID on every span, the route in every span name, and a
// url.full with the query's values redacted.
func checkRetried(traces jaegerTraces, id string) []string {
	if len(traces) != 1 {
		return []string{fmt.Sprintf("%d traces carry request ID %s; want 1", len(traces), id)}
	}
	tr := traces[0]
	var errs []string
	roots, clients := tr.roots(), tr.kind("client")
	if len(roots) != 1 {
		return append(errs, fmt.Sprintf("%d root spans; want 1, the logical span", len(roots)))
	}
	logical := roots[0]
	if k := logical.tag("span.kind"); k != "internal" {
		errs = append(errs, fmt.Sprintf("logical span kind %v; want internal", k))
	}
	if len(clients) != 2 {
		errs = append(errs, fmt.Sprintf("%d CLIENT spans; want 2, one per attempt", len(clients)))
	}
	if len(tr.Spans) != 1+len(clients) {
		errs = append(errs, fmt.Sprintf("%d spans; want the logical span and its CLIENT spans only", len(tr.Spans)))
	}
	resends := 0
	for _, s := range append([]jaegerSpan{logical}, clients...) {
		if s.OperationName != "GET /v1/users/{id}" {
			errs = append(errs, fmt.Sprintf("span %s named %q; want the route in it, \"GET /v1/users/{id}\"", s.SpanID, s.OperationName))
		}
		if got := s.tag("outbound.request.id"); got != id {
			errs = append(errs, fmt.Sprintf("span %q has outbound.request.id %v; want %s", s.OperationName, got, id))
		}
	}
	for _, c := range clients {
		if c.parent() != logical.SpanID {
			errs = append(errs, fmt.Sprintf("CLIENT span %s has parent %q; want the logical span %s", c.SpanID, c.parent(), logical.SpanID))
		}
		switch rc := c.tag("http.request.resend_count"); rc {
		case nil:
		case 1.0:
			resends++
		default:
			errs = append(errs, fmt.Sprintf("CLIENT span has http.request.resend_count %v; want 1 on the resend, none on the first", rc))
		}
		if u, _ := c.tag("url.full").(string); !strings.Contains(u, "token=REDACTED") {
			errs = append(errs, fmt.Sprintf("CLIENT span url.full %q; want the path with its query values redacted", u))
		}
	}
	if resends != 1 {
		errs = append(errs, fmt.Sprintf("%d CLIENT spans with http.request.resend_count=1; want 1", resends))
	}
	retries := logical.events("outbound.retry")
	if len(retries) != 1 {
		return append(errs, fmt.Sprintf("%d outbound.retry events on the logical span; want 1", len(retries)))
	}
	ev := retries[0]
	if d, ok := ev["outbound.delay"].(float64); !ok || d <= 0 {
		errs = append(errs, fmt.Sprintf("retry event outbound.delay %v; want the backoff in seconds, > 0", ev["outbound.delay"]))
	}
	if r := ev["outbound.reason"]; r != "status_503" {
		errs = append(errs, fmt.Sprintf("retry event outbound.reason %v; want status_503", r))
	}
	if a := ev["outbound.attempt"]; a != 1.0 {
		errs = append(errs, fmt.Sprintf("retry event outbound.attempt %v; want 1", a))
	}
	return errs
}

// checkRefused lists what the refused call's trace lacks: the logical span
// with the breaker's event and an error, and no CLIENT span (nothing went on
// the wire).
func checkRefused(traces jaegerTraces, id string) []string {
	if len(traces) != 1 {
		return []string{fmt.Sprintf("%d traces carry request ID %s; want 1", len(traces), id)}
	}
	tr := traces[0]
	var errs []string
	if n := len(tr.kind("client")); n != 0 {
		errs = append(errs, fmt.Sprintf("%d CLIENT spans; want none, the breaker refused the call before the wire", n))
	}
	roots := tr.roots()
	if len(roots) != 1 {
		return append(errs, fmt.Sprintf("%d root spans; want 1", len(roots)))
	}
	if len(roots[0].events("outbound.circuit_rejected")) == 0 {
		errs = append(errs, "no outbound.circuit_rejected event on the logical span")
	}
	if roots[0].tag("error.type") == nil {
		errs = append(errs, "the logical span has no error.type")
	}
	return errs
}

// Jaeger's HTTP query API (/api/traces), as much of it as the test reads.
type jaegerTraces []jaegerTrace

type jaegerTrace struct {
	TraceID string       `json:"traceID"`
	Spans   []jaegerSpan `json:"spans"`
}

type jaegerSpan struct {
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []jaegerKV `json:"tags"`
	Logs []struct {
		Fields []jaegerKV `json:"fields"`
	} `json:"logs"`
}

type jaegerKV struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

// queryTraces returns the traces Jaeger has of service, and its raw answer.
func queryTraces(ctx context.Context, qc *http.Client, base, service string) (jaegerTraces, []byte, error) {
	q := url.Values{"service": {service}, "limit": {"100"}, "lookback": {"1h"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/traces?"+q.Encode(), nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := qc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, raw, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, raw, fmt.Errorf("query API: %s", resp.Status)
	}
	var out struct {
		Data jaegerTraces `json:"data"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, raw, fmt.Errorf("query API: %w", err)
	}
	return out.Data, raw, nil
}

// withRequestID returns the traces with a span tagged with request ID id.
func (ts jaegerTraces) withRequestID(id string) jaegerTraces {
	var out jaegerTraces
	for _, tr := range ts {
		for _, s := range tr.Spans {
			if s.tag("outbound.request.id") == id {
				out = append(out, tr)
				break
			}
		}
	}
	return out
}

func (ts jaegerTraces) spans() int {
	n := 0
	for _, tr := range ts {
		n += len(tr.Spans)
	}
	return n
}

func (tr jaegerTrace) roots() []jaegerSpan {
	var out []jaegerSpan
	for _, s := range tr.Spans {
		if s.parent() == "" {
			out = append(out, s)
		}
	}
	return out
}

func (tr jaegerTrace) kind(k string) []jaegerSpan {
	var out []jaegerSpan
	for _, s := range tr.Spans {
		if s.tag("span.kind") == k {
			out = append(out, s)
		}
	}
	return out
}

func (s jaegerSpan) tag(key string) any {
	for _, kv := range s.Tags {
		if kv.Key == key {
			return kv.Value
		}
	}
	return nil
}

func (s jaegerSpan) parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

// events returns the fields of the span's logs (OTel events) named name.
func (s jaegerSpan) events(name string) []map[string]any {
	var out []map[string]any
	for _, l := range s.Logs {
		f := map[string]any{}
		for _, kv := range l.Fields {
			f[kv.Key] = kv.Value
		}
		if f["event"] == name {
			out = append(out, f)
		}
	}
	return out
}
