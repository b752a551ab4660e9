package hardening_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/outboundhttp/outbound"
	"github.com/outboundhttp/outbound/transport/requestid"
	"github.com/outboundhttp/outbound/transport/tracing"
)

// The secrets of TestSecretsNeverLeak: the API key of Config (testAPIKey), a
// bearer token the caller sets, the password of URL userinfo and a token in
// the query string.
const (
	secretBearer   = "bearer-SECRET-7d1f02aa"
	secretUser     = "alice"
	secretPassword = "basicPASS-e91c44"
	secretQuery    = "qTOKEN-55aa9b0c"
)

// secrets returns every secret in every form it may take on the wire.
func secrets() map[string]string {
	return map[string]string{
		"API key":               testAPIKey,
		"bearer token":          secretBearer,
		"userinfo password":     secretPassword,
		"userinfo basic header": base64.StdEncoding.EncodeToString([]byte(secretUser + ":" + secretPassword)),
		"query token":           secretQuery,
	}
}

// leak names the first secret found in s, or "".
func leak(s string) string {
	for name, v := range secrets() {
		if strings.Contains(s, v) {
			return name
		}
	}
	return ""
}

// secretURL is base with userinfo, path and a token in the query.
func secretURL(base string) string {
	u, _ := url.Parse(base)
	u.User = url.UserPassword(secretUser, secretPassword)
	u.Path = "/v1/items"
	u.RawQuery = "token=" + secretQuery + "&page=2"
	return u.String()
}

// telemetry collects everything a run exports or logs.
type telemetry struct {
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
	mu     sync.Mutex
	logs   bytes.Buffer // JSON and text records, one per line
	logger *slog.Logger
	text   *slog.Logger
}

// lockedWriter serializes writes from both log handlers to one buffer.
type lockedWriter struct{ t *telemetry }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.t.mu.Lock()
	defer w.t.mu.Unlock()
	return w.t.logs.Write(p)
}

func newTelemetry() *telemetry {
	t := &telemetry{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	t.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(t.spans))
	t.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(t.reader))
	w := lockedWriter{t}
	opts := &slog.HandlerOptions{Level: slog.LevelDebug, AddSource: true}
	t.logger = slog.New(requestid.LogHandler(slog.NewJSONHandler(w, opts)))
	t.text = slog.New(requestid.LogHandler(slog.NewTextHandler(w, opts)))
	return t
}

func (tm *telemetry) clientOptions() []outbound.ClientOption {
	return []outbound.ClientOption{outbound.WithTracingOptions(tracing.WithTracerProvider(tm.tp), tracing.WithMeterProvider(tm.mp))}
}

// spanTexts returns every string a span carries: name, status, attributes,
// events and their attributes, links' attributes.
func spanTexts(s sdktrace.ReadOnlySpan) []string {
	out := []string{"name=" + s.Name(), "status=" + s.Status().Description}
	attrs := func(prefix string, kvs []attribute.KeyValue) {
		for _, kv := range kvs {
			out = append(out, prefix+string(kv.Key)+"="+kv.Value.String())
		}
	}
	attrs("attr:", s.Attributes())
	for _, e := range s.Events() {
		out = append(out, "event="+e.Name)
		attrs("event:"+e.Name+":", e.Attributes)
	}
	for _, l := range s.Links() {
		attrs("link:", l.Attributes)
	}
	return out
}

// metricTexts returns every metric name and data point attribute set.
func metricTexts(rm metricdata.ResourceMetrics) []string {
	var out []string
	set := func(name string, s attribute.Set) {
		for _, kv := range s.ToSlice() {
			out = append(out, name+":"+string(kv.Key)+"="+kv.Value.String())
		}
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out = append(out, "metric="+m.Name)
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					set(m.Name, p.Attributes)
				}
			case metricdata.Sum[float64]:
				for _, p := range d.DataPoints {
					set(m.Name, p.Attributes)
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					set(m.Name, p.Attributes)
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					set(m.Name, p.Attributes)
				}
			case metricdata.Histogram[int64]:
				for _, p := range d.DataPoints {
					set(m.Name, p.Attributes)
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					set(m.Name, p.Attributes)
				}
			default:
				out = append(out, fmt.Sprintf("unhandled %T", d))
			}
		}
	}
	return out
}

// TestSecretsNeverLeak runs every error path and every telemetry path of the
// standard stack with an API key (Config.APIKey), a caller's bearer token,
// userinfo in the URL and a token in the query string, and looks for them in
// every error string, every log record (slog JSON and text handlers behind
// requestid.LogHandler, logging the error, StatusFor and the Config), every
// span (name, status, attributes, events, links) and every metric attribute.
//
// One exception is net/http's, not the stack's: http.Client.Do wraps every
// error in a *url.Error whose URL keeps the query string (net/http removes
// only the userinfo password). The test checks that the query token appears
// there and nowhere else — in particular not in the error the stack itself
// returned (url.Error.Err) — and docs/reliability.md tells services to log
// outbound.RedactURL instead of the raw error when queries carry secrets.
func TestSecretsNeverLeak(t *testing.T) {
	tm := newTelemetry()
	defer tm.tp.Shutdown(context.Background())
	defer tm.mp.Shutdown(context.Background())

	var errs []error // every error seen, to check and log
	record := func(name string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	quiet := log.New(io.Discard, "", 0)
	server := func(h http.HandlerFunc) *httptest.Server {
		s := httptest.NewUnstartedServer(h)
		s.Config.ErrorLog = quiet
		s.Start()
		t.Cleanup(s.Close)
		return s
	}
	// call sends one request as a service would: through Do, then
	// CheckResponse on the response, reading the body to the end.
	call := func(name string, c *http.Client, target string, bearer bool) {
		ctx := requestid.NewContext(context.Background(), "req-"+name)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			t.Fatal(err)
		}
		if bearer {
			req.Header.Set("Authorization", "Bearer "+secretBearer)
		}
		resp, err := c.Do(req)
		if err != nil {
			record(name, err)
			tm.logger.ErrorContext(ctx, "outbound call failed", "err", err, "status", outbound.StatusFor(err), "url", outbound.RedactURL(req.URL))
			return
		}
		_, rerr := io.Copy(io.Discard, resp.Body)
		record(name+" (body)", rerr)
		if rerr == nil {
			record(name+" (status)", outbound.CheckResponse(resp))
		}
		resp.Body.Close()
	}
	newC := func(mod func(*outbound.Config), opts ...outbound.ClientOption) *http.Client {
		cfg := testConfig()
		cfg.TotalBudget = time.Second
		if mod != nil {
			mod(&cfg)
		}
		return newClient(t, cfg, append(tm.clientOptions(), opts...)...)
	}

	ok := server(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "fine") })
	flaky := func() http.HandlerFunc {
		var attempts attemptCounter
		return func(w http.ResponseWriter, r *http.Request) {
			if attempts.next(r) == 0 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, "fine")
		}
	}
	down := server(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	pushback := server(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	hang := server(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	release := make(chan struct{})
	held := make(chan struct{}, 1)
	hold := server(func(w http.ResponseWriter, r *http.Request) {
		held <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	stallBody := server(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.Write([]byte("x"))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	})
	redirectLoop := server(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.String(), http.StatusFound)
	})
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	tlsSrv.Config.ErrorLog = quiet
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	refused := "http://" + ln.Addr().String()
	ln.Close()

	// Success, with the API key and with the caller's bearer token.
	c := newC(nil)
	call("ok", c, secretURL(ok.URL), false)
	call("ok-bearer", c, secretURL(ok.URL), true)
	// A retried 503, then success.
	call("retried", newC(nil), secretURL(server(flaky()).URL), true)
	// Attempts exhausted: the last 502 goes to CheckResponse.
	call("exhausted", newC(nil), secretURL(down.URL), true)
	// The breaker opens after two failures and refuses the third call.
	cb := newC(func(c *outbound.Config) { c.MaxAttempts = 1; c.CircuitMinRequests = 2 })
	for i := 0; i < 3; i++ {
		call(fmt.Sprintf("circuit-%d", i), cb, secretURL(down.URL), i == 2)
	}
	// Server pushback, then a refusal by the rate limiter.
	rl := newC(nil)
	call("pushback", rl, secretURL(pushback.URL), false)
	call("pushback-refused", rl, secretURL(pushback.URL), true)
	// The total budget runs out on a hanging upstream.
	call("budget", newC(func(c *outbound.Config) { c.TotalBudget = 300 * time.Millisecond }), secretURL(hang.URL), true)
	// The response-header timeout on every attempt.
	call("header-timeout", newC(func(c *outbound.Config) { c.ResponseHeaderTimeout = 100 * time.Millisecond }), secretURL(hang.URL), true)
	// Connection refused.
	call("refused", newC(nil), secretURL(refused), true)
	// The body idle timeout.
	call("body-idle", newC(func(c *outbound.Config) { c.BodyIdleTimeout = 100 * time.Millisecond }), secretURL(stallBody.URL), true)
	// Go's redirect limit.
	call("redirects", newC(nil), secretURL(redirectLoop.URL), true)
	// An untrusted certificate.
	call("tls", newC(nil), secretURL(tlsSrv.URL), true)
	// The concurrency limit with no queue: one call holds the only slot.
	q := newC(func(c *outbound.Config) { c.AdaptiveConcurrency = false; c.MaxConcurrency = 1; c.QueueLength = 0 })
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); call("queue-holder", q, secretURL(hold.URL), true) }()
	<-held
	call("queue-full", q, secretURL(hold.URL), true)
	close(release)
	wg.Wait()
	// The caller cancels.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, secretURL(ok.URL), nil)
	_, err := c.Do(req)
	record("canceled", err)
	// An invalid Config carrying the API key.
	bad := testConfig()
	bad.TotalBudget = 0
	_, err = outbound.NewClient(bad)
	record("invalid-config", err)

	if len(errs) < 15 {
		t.Fatalf("only %d error paths ran: %v", len(errs), errs)
	}
	sawQueryInURLError := false
	for _, err := range errs {
		msg := err.Error()
		var ue *url.Error
		if errors.As(err, &ue) {
			// The stack's own error must be clean of every secret.
			if name := leak(ue.Err.Error()); name != "" {
				t.Errorf("the stack's error shows the %s: %v", name, ue.Err)
			}
			// net/http's URL keeps the query: allowed there only.
			if strings.Contains(ue.URL, secretQuery) {
				sawQueryInURLError = true
				msg = strings.ReplaceAll(msg, ue.URL, "<url.Error.URL>")
			}
		}
		if name := leak(msg); name != "" {
			t.Errorf("error shows the %s: %v", name, err)
		}
		// What a service logs: the error, its status, the Config.
		tm.logger.Error("outbound call failed", "err", err, "status", outbound.StatusFor(err))
		tm.text.Error("outbound call failed", "err", errors.Unwrap(err), "status", outbound.StatusFor(err))
	}
	if !sawQueryInURLError {
		t.Log("note: no *url.Error carried the query (net/http changed?)")
	}
	tm.logger.Info("config", "config", testConfig())
	tm.text.Info("config", "config", testConfig())
	tm.text.Info("config", "config_gostring", fmt.Sprintf("%#v", testConfig()))

	// Log records: the *url.Error's query is the one known exception (see
	// above); every other secret must be absent.
	tm.mu.Lock()
	logs := tm.logs.String()
	tm.mu.Unlock()
	for _, line := range strings.Split(logs, "\n") {
		if name := leak(line); name != "" && name != "query token" {
			t.Errorf("log record shows the %s: %s", name, line)
		}
		if strings.Contains(line, `"config"`) && strings.Contains(line, testAPIKey) {
			t.Errorf("Config logged with its API key: %s", line)
		}
	}
	if !strings.Contains(logs, `"request_id":"req-ok`) && !strings.Contains(logs, `"request_id":"req-`) {
		t.Errorf("LogHandler added no request_id: the log path did not run")
	}

	// Spans: every string, no exception.
	spans := tm.spans.Ended()
	if len(spans) < 20 {
		t.Fatalf("only %d spans recorded: the telemetry path did not run", len(spans))
	}
	var texts []string
	for _, s := range spans {
		texts = append(texts, spanTexts(s)...)
	}
	// Metrics: every attribute, no exception.
	var rm metricdata.ResourceMetrics
	if err := tm.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	mt := metricTexts(rm)
	if len(mt) < 10 {
		t.Fatalf("only %d metric texts: the metric path did not run", len(mt))
	}
	texts = append(texts, mt...)
	for _, s := range texts {
		if name := leak(s); name != "" {
			t.Errorf("telemetry shows the %s: %s", name, s)
		}
		if strings.HasPrefix(s, "unhandled") {
			t.Errorf("metric type not inspected: %s", s)
		}
	}
	if t.Failed() || testing.Verbose() {
		for _, e := range errs {
			t.Log(e)
		}
	}
	t.Logf("%d error paths, %d spans, %d metric texts, %d log bytes checked", len(errs), len(spans), len(mt), len(logs))
}
