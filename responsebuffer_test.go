package outbound

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// stallingServer answers its first request with 4 bytes of a 15-byte body
// and then nothing until the client gives up; later requests in full.
func stallingServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var attempts atomic.Int32
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "15")
		if attempts.Add(1) == 1 {
			io.WriteString(w, `{"st`)
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-stop:
			}
			return
		}
		io.WriteString(w, `{"status":"ok"}`)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) })
	return srv, &attempts
}

// With DefaultConfig a small body that stalls is read inside the attempt and
// retried, so the caller gets the whole body of the second attempt: stalled
// by the base transport's body idle timeout, or by the wait for a byte
// reaching half the time left of the budget.
func TestNewClientRetriesStalledBody(t *testing.T) {
	for _, tt := range []struct {
		name   string
		config func(*Config)
	}{
		{"body idle timeout", func(c *Config) { c.BodyIdleTimeout = 100 * time.Millisecond }},
		{"half the budget left", func(c *Config) { c.TotalBudget = time.Second; c.MaxAttempts = 2 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, attempts := stallingServer(t)
			cfg := DefaultConfig()
			tt.config(&cfg)
			resp, err := newTestClient(t, cfg).Get(srv.URL)
			if err != nil {
				t.Fatalf("GET: %v; want the retried attempt's response", err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(b) != `{"status":"ok"}` || attempts.Load() != 2 {
				t.Fatalf("body %q, %v after %d attempts; want the whole body after 2", b, err, attempts.Load())
			}
		})
	}
}

// A text/event-stream response is never held back by the buffer: the first
// event reaches the caller while the server still waits — for the caller to
// confirm it read that event. Were the body buffered, the call would end by
// the test's deadline instead.
func TestNewClientEventStreamNotHeldBack(t *testing.T) {
	confirmed := make(chan struct{})
	var sent atomic.Int64 // UnixNano when the first event was flushed
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		sent.Store(time.Now().UnixNano())
		w.(http.Flusher).Flush()
		select {
		case <-confirmed:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: two\n\n")
	}))
	defer srv.Close()
	cfg := DefaultConfig()
	if cfg.ResponseBuffer <= 0 {
		t.Fatalf("DefaultConfig().ResponseBuffer = %d; want the buffer on", cfg.ResponseBuffer)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/events", nil)
	resp, err := newTestClient(t, cfg).Do(req)
	if err != nil {
		t.Fatalf("GET: %v; want the stream", err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	first, err := readEvent(r)
	got := time.Now()
	if err != nil || first != "data: one" {
		t.Fatalf("first event %q, %v; want \"data: one\" before the server finishes", first, err)
	}
	t.Logf("first event read %v after the server flushed it", got.Sub(time.Unix(0, sent.Load())))
	close(confirmed)
	if second, err := readEvent(r); err != nil || second != "data: two" {
		t.Fatalf("second event %q, %v", second, err)
	}
}

func readEvent(r *bufio.Reader) (string, error) {
	var lines []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return strings.Join(lines, "\n"), err
		}
		if line = strings.TrimRight(line, "\n"); line == "" {
			return strings.Join(lines, "\n"), nil
		}
		lines = append(lines, line)
	}
}
