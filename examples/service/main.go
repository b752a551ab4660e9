// Command service is the reference article's FastAPI endpoint in Go: an HTTP
// service whose handler calls an upstream through outbound's standard client
// and maps upstream failures to clear statuses — 502 when the upstream fails,
// 504 when the time budget runs out, 503 with Retry-After when a breaker or a
// limit refuses — with the request ID in every error and never the upstream's
// body or a secret.
//
// Run it with an upstream:
//
//	cd examples  # a module of its own
//	UPSTREAM_URL=https://api.example.com APP_API_KEY=... go run ./service
//
// Settings come from APP_* variables (outbound.LoadConfig); telemetry is
// exported when OTEL_EXPORTER_OTLP_ENDPOINT is set.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/outboundhttp/outbound"
	"github.com/outboundhttp/outbound/transport/budget"
	"github.com/outboundhttp/outbound/transport/requestid"
	"github.com/outboundhttp/outbound/transport/tracing"
	"github.com/outboundhttp/outbound/transport/tracing/otelsetup"
)

// maxUpstreamBody bounds what the service reads of an upstream answer.
const maxUpstreamBody = 1 << 20

// Service answers GET /profiles/{id} from the upstream's /v1/users/{id}.
type Service struct {
	Upstream *url.URL
	Client   *http.Client
	Logger   *slog.Logger
}

// Handler returns the service's routes, wrapped so every request has a
// validated request ID (propagated to the upstream) and a deadline taken from
// the caller's Request-Timeout-Ms header, bounded.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /profiles/{id}", s.profile)
	return requestid.Handler(budget.Handler(mux))
}

func (s *Service) profile(w http.ResponseWriter, r *http.Request) {
	ctx := tracing.WithRoute(r.Context(), "/v1/users/{id}")
	u := s.Upstream.JoinPath("v1", "users", r.PathValue("id"))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer resp.Body.Close()
	if err := outbound.CheckResponse(resp); err != nil {
		s.fail(w, r, err)
		return
	}
	var data json.RawMessage
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxUpstreamBody)).Decode(&data); err != nil {
		s.fail(w, r, fmt.Errorf("decoding upstream answer: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "data": data})
}

// fail answers with the status outbound.StatusFor maps err to. The body names
// the request ID so the caller can quote it; the upstream's body and the
// error text (which may carry upstream details) go only to the log.
func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := outbound.StatusFor(err)
	id, _ := requestid.FromContext(r.Context())
	if d, ok := outbound.RetryAfterFor(err); ok && status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
	}
	if s.Logger != nil {
		s.Logger.ErrorContext(r.Context(), "upstream call failed", "status", status, "err", err)
	}
	writeJSON(w, status, map[string]any{
		"ok":         false,
		"error":      http.StatusText(status),
		"request_id": id,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "service:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := outbound.LoadConfig("APP_")
	if err != nil {
		return err
	}
	upstream, err := url.Parse(envOr("UPSTREAM_URL", "http://127.0.0.1:9000"))
	if err != nil {
		return fmt.Errorf("UPSTREAM_URL: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	telemetry, err := otelsetup.Setup(ctx)
	if err != nil {
		return err
	}
	client, err := outbound.NewClient(cfg, outbound.WithTracingOptions(telemetry.TracingOptions()...))
	if err != nil {
		return err
	}
	logger := slog.New(requestid.LogHandler(slog.NewJSONHandler(os.Stderr, nil)))
	svc := &Service{Upstream: upstream, Client: client, Logger: logger}
	srv := &http.Server{
		Addr:              envOr("ADDR", "127.0.0.1:8080"),
		Handler:           svc.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	logger.Info("listening", "addr", srv.Addr, "upstream", outbound.RedactURL(upstream))

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	return shutdown(srv, client, telemetry.Shutdown, cfg.TotalBudget)
}

// shutdown is the article's shutdown hook: stop accepting, let in-flight calls
// finish within one total budget, close idle upstream connections, and flush
// telemetry.
func shutdown(srv *http.Server, client *http.Client, telemetry func(context.Context) error, grace time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace+time.Second)
	defer cancel()
	err := srv.Shutdown(ctx)
	client.CloseIdleConnections()
	if terr := telemetry(ctx); terr != nil {
		err = errors.Join(err, terr)
	}
	return err
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
