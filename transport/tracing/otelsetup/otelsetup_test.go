package otelsetup

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clearEnv unsets every variable Setup or the exporters read, so the
// machine's environment cannot change a test.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "OTEL_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

// collector is an OTLP/HTTP endpoint on loopback that records what it gets.
type collector struct {
	*httptest.Server
	mu     sync.Mutex
	paths  []string
	ctypes []string
	spans  []string
}

func newCollector(t *testing.T) *collector {
	c := &collector{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.paths = append(c.paths, r.URL.Path)
		c.ctypes = append(c.ctypes, r.Header.Get("Content-Type"))
		if r.URL.Path == "/v1/traces" {
			var req coltrace.ExportTraceServiceRequest
			if err := proto.Unmarshal(b, &req); err != nil {
				t.Errorf("collector: bad trace export: %v", err)
			}
			for _, rs := range req.ResourceSpans {
				for _, ss := range rs.ScopeSpans {
					for _, s := range ss.Spans {
						c.spans = append(c.spans, s.Name)
					}
				}
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(c.Close)
	return c
}

func TestOTLPHTTP(t *testing.T) {
	clearEnv(t)
	col := newCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", col.URL)
	t.Setenv("OTEL_SERVICE_NAME", "otelsetup-test")
	p, err := Setup(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.TracerProvider.(*sdktrace.TracerProvider); !ok {
		t.Fatalf("TracerProvider %T; want the SDK's", p.TracerProvider)
	}
	if _, ok := p.MeterProvider.(*sdkmetric.MeterProvider); !ok {
		t.Fatalf("MeterProvider %T; want the SDK's", p.MeterProvider)
	}
	_, span := p.TracerProvider.Tracer("test").Start(context.Background(), "hello-span")
	span.End()
	ctr, _ := p.MeterProvider.Meter("test").Int64Counter("test.counter")
	ctr.Add(context.Background(), 1)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	got := strings.Join(col.paths, ",")
	if !strings.Contains(got, "/v1/traces") || !strings.Contains(got, "/v1/metrics") {
		t.Errorf("collector got %q; want /v1/traces and /v1/metrics", got)
	}
	for _, ct := range col.ctypes {
		if ct != "application/x-protobuf" {
			t.Errorf("content type %q; want application/x-protobuf", ct)
		}
	}
	if len(col.spans) != 1 || col.spans[0] != "hello-span" {
		t.Errorf("collector got spans %q; want [hello-span]", col.spans)
	}
}

func TestSignalSpecificEndpoint(t *testing.T) {
	clearEnv(t)
	col := newCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", col.URL+"/v1/traces")
	p, err := Setup(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	if _, ok := p.TracerProvider.(*sdktrace.TracerProvider); !ok {
		t.Errorf("TracerProvider %T; want the SDK's", p.TracerProvider)
	}
	if _, ok := p.MeterProvider.(metricnoop.MeterProvider); !ok {
		t.Errorf("MeterProvider %T; want no-op (no metrics endpoint)", p.MeterProvider)
	}
}

func TestConsole(t *testing.T) {
	clearEnv(t)
	t.Setenv("OTEL_TRACES_EXPORTER", "console")
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	t.Setenv("OTEL_SERVICE_NAME", "console-service")
	var buf bytes.Buffer
	p, err := Setup(context.Background(), WithConsoleWriter(&buf))
	if err != nil {
		t.Fatal(err)
	}
	_, span := p.TracerProvider.Tracer("test").Start(context.Background(), "console-span")
	span.End()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"Name":"console-span"`) || !strings.Contains(buf.String(), "console-service") {
		t.Errorf("console output %q lacks the span", buf.String())
	}
	if _, ok := p.MeterProvider.(metricnoop.MeterProvider); !ok {
		t.Errorf("MeterProvider %T; want no-op with OTEL_METRICS_EXPORTER=none", p.MeterProvider)
	}
}

func TestDefaultExporterConsole(t *testing.T) {
	clearEnv(t)
	var buf bytes.Buffer
	p, err := Setup(context.Background(), WithConsoleWriter(&buf), WithDefaultExporter("console"))
	if err != nil {
		t.Fatal(err)
	}
	ctr, _ := p.MeterProvider.Meter("test").Int64Counter("console.counter")
	ctr.Add(context.Background(), 3)
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "console.counter") {
		t.Errorf("console output %q lacks the metric", buf.String())
	}
}

func TestNothingConfigured(t *testing.T) {
	for _, env := range [][2]string{{}, {"OTEL_SDK_DISABLED", "true"}} {
		clearEnv(t)
		if env[0] != "" {
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
			t.Setenv(env[0], env[1])
		}
		p, err := Setup(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := p.TracerProvider.(tracenoop.TracerProvider); !ok {
			t.Errorf("%v: TracerProvider %T; want no-op", env, p.TracerProvider)
		}
		if _, ok := p.MeterProvider.(metricnoop.MeterProvider); !ok {
			t.Errorf("%v: MeterProvider %T; want no-op", env, p.MeterProvider)
		}
		if err := p.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
		if len(p.TracingOptions()) != 3 {
			t.Error("TracingOptions")
		}
	}
}

func TestEnvErrors(t *testing.T) {
	for _, tc := range []struct{ k, v, want string }{
		{"OTEL_TRACES_EXPORTER", "zipkin", "not supported"},
		{"OTEL_METRICS_EXPORTER", "prometheus", "not supported"},
		{"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "http/protobuf"},
		{"OTEL_PROPAGATORS", "b3", "not supported"},
	} {
		clearEnv(t)
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
		t.Setenv(tc.k, tc.v)
		p, err := Setup(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "otelsetup: ") {
			t.Errorf("%s=%s: got (%v, %v); want an otelsetup error mentioning %q", tc.k, tc.v, p, err, tc.want)
		}
	}
}

func TestPropagators(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want []string
	}{
		{"", []string{"baggage", "traceparent", "tracestate"}},
		{"tracecontext", []string{"traceparent", "tracestate"}},
		{"none", nil},
	} {
		p, err := propagators(tc.env)
		if err != nil {
			t.Fatal(err)
		}
		got := p.Fields()
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("OTEL_PROPAGATORS=%q fields %q; want %q", tc.env, got, tc.want)
		}
	}
}

func TestWithGlobal(t *testing.T) {
	clearEnv(t)
	t.Setenv("OTEL_TRACES_EXPORTER", "console")
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	oldTP, oldMP, oldProp := otel.GetTracerProvider(), otel.GetMeterProvider(), otel.GetTextMapPropagator()
	defer func() {
		otel.SetTracerProvider(oldTP)
		otel.SetMeterProvider(oldMP)
		otel.SetTextMapPropagator(oldProp)
	}()

	p, err := Setup(context.Background(), WithConsoleWriter(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	if otel.GetTracerProvider() == p.TracerProvider {
		t.Error("Setup without WithGlobal installed the global tracer provider")
	}
	p.Shutdown(context.Background())

	p, err = Setup(context.Background(), WithConsoleWriter(io.Discard), WithGlobal())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	if otel.GetTracerProvider() != p.TracerProvider {
		t.Error("WithGlobal did not install the tracer provider")
	}
	if len(otel.GetTextMapPropagator().Fields()) != 3 {
		t.Error("WithGlobal did not install the propagator")
	}
}
