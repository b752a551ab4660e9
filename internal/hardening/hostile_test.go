package hardening_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outboundhttp/outbound"
	"github.com/outboundhttp/outbound/transport/base"
	"github.com/outboundhttp/outbound/transport/ratelimit"
)

// attemptCounter counts the attempts of each logical call by its request ID.
type attemptCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (a *attemptCounter) next(r *http.Request) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n == nil {
		a.n = map[string]int{}
	}
	id := r.Header.Get("X-Request-ID")
	n := a.n[id]
	a.n[id] = n + 1
	return n
}

// endless writes buf until the client goes away or 10 s pass, and returns
// how much it wrote.
func endless(w http.ResponseWriter, r *http.Request) int64 {
	buf := make([]byte, 32<<10)
	stop := time.Now().Add(10 * time.Second)
	var n int64
	for time.Now().Before(stop) && r.Context().Err() == nil {
		m, err := w.Write(buf)
		n += int64(m)
		if err != nil {
			break
		}
	}
	return n
}

// TestHostileHugeBodyOnRetriedResponse: a 503 whose body never ends (chunked,
// or a declared Content-Length of 1 TiB) is retried. The retry layer must drain
// a bounded amount and close it, so each call stays fast and memory stays
// flat however much the upstream is willing to send.
func TestHostileHugeBodyOnRetriedResponse(t *testing.T) {
	for _, tc := range []struct {
		name     string
		declared bool
	}{{"endless-chunked", false}, {"declared-1TiB", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var attempts attemptCounter
			var written atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if attempts.next(r) >= 2 {
					io.WriteString(w, "ok")
					return
				}
				if tc.declared {
					w.Header().Set("Content-Length", strconv.FormatInt(1<<40, 10))
				}
				w.WriteHeader(http.StatusServiceUnavailable)
				written.Add(endless(w, r))
			}))
			defer srv.Close()
			cfg := testConfig()
			// Two of every three attempts fail: the breaker would rightly open
			// after 20 attempts. This test is about the drain, not the breaker.
			cfg.CircuitEnabled = false
			c := newClient(t, cfg)

			call := func() time.Duration {
				resp, d, err := get(context.Background(), c, srv.URL)
				if err != nil {
					t.Fatalf("call: %v", err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || string(b) != "ok" {
					t.Fatalf("got %d %q %v; want 200 ok after two endless 503s", resp.StatusCode, b, err)
				}
				return d
			}
			call() // warm up: pools, first connection
			const calls = 10
			heap0, alloc0 := heapAfterGC(), totalAlloc()
			var worst time.Duration
			for i := 0; i < calls; i++ {
				worst = max(worst, call())
			}
			allocated := totalAlloc() - alloc0
			heap1 := heapAfterGC()
			growth := int64(heap1) - int64(heap0)
			t.Logf("%d calls (2 endless 503s each): worst call %v; allocated %.1f KiB/call; live heap %+d KiB; server wrote %.1f MiB in all",
				calls, worst, float64(allocated)/calls/1024, growth/1024, float64(written.Load())/mib)
			// The drain is bounded to 64 KiB and 100 ms per discarded response.
			if worst > 1500*time.Millisecond {
				t.Errorf("worst call took %v; two bounded drains should take well under a second", worst)
			}
			if per := allocated / calls; per > 2*mib {
				t.Errorf("allocated %d bytes per call; the drain must not buffer the body", per)
			}
			if growth > 8*mib {
				t.Errorf("live heap grew by %d bytes over %d calls", growth, calls)
			}
		})
	}
}

// TestHostileHugeBodyOnFinalResponse: when every attempt gets the endless 503,
// the caller gets the last one, and CheckResponse reads only its first 512
// bytes.
func TestHostileHugeBodyOnFinalResponse(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		endless(w, r)
	}))
	defer srv.Close()
	c := newClient(t, testConfig())
	resp, d, err := get(context.Background(), c, srv.URL)
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	err = outbound.CheckResponse(resp)
	var se *outbound.StatusError
	if !errors.As(err, &se) || se.StatusCode != 503 || len(se.Body) != 512 {
		t.Fatalf("CheckResponse = %v; want a StatusError 503 with a 512-byte excerpt", err)
	}
	if d > 2*time.Second {
		t.Errorf("call took %v; want it within the 2 s budget", d)
	}
}

// TestHostileHugeHeader: a response header of 64 KiB is accepted; one of 1 MiB
// or more is refused at once with net/http's clear error (the base transport
// caps response headers at 1 MiB, as net/http's server caps request headers),
// and the refusal is not retried.
func TestHostileHugeHeader(t *testing.T) {
	for _, tc := range []struct {
		size int
		ok   bool
	}{{64 << 10, true}, {mib, false}, {4 * mib, false}, {16 * mib, false}} {
		t.Run(strconv.Itoa(tc.size>>10)+"KiB", func(t *testing.T) {
			var attempts atomic.Int32
			value := strings.Repeat("a", tc.size)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				attempts.Add(1)
				w.Header().Set("X-Huge", value)
				w.WriteHeader(http.StatusServiceUnavailable) // retryable, if it got through
			}))
			defer srv.Close()
			c := newClient(t, testConfig())
			resp, d, err := get(context.Background(), c, srv.URL)
			if tc.ok {
				if err != nil {
					t.Fatalf("call: %v", err)
				}
				resp.Body.Close()
				if len(resp.Header.Get("X-Huge")) != tc.size {
					t.Fatalf("header lost")
				}
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatalf("a %d-byte header was accepted", tc.size)
			}
			if !strings.Contains(err.Error(), "server response headers exceeded") {
				t.Errorf("error %q does not say the headers were too large", err)
			}
			if n := attempts.Load(); n != 1 {
				t.Errorf("%d attempts; an oversized header must not be retried: %v", n, err)
			}
			if d > time.Second {
				t.Errorf("refusal took %v", d)
			}
		})
	}
}

// TestHostileRetryAfterHuge: Retry-After of 10^12 seconds, or a date in year
// 9999, is capped; a wait that cannot end within the budget is not started:
// the caller gets the 503 at once, and the next call to the same upstream is
// refused at once by the limiter (which remembers the pushback) instead of
// sleeping.
func TestHostileRetryAfterHuge(t *testing.T) {
	for _, v := range []string{"1000000000000", "Fri, 31 Dec 9999 23:59:59 GMT", "99999999999999999999999999999"} {
		t.Run(v, func(t *testing.T) {
			var attempts atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				attempts.Add(1)
				w.Header().Set("Retry-After", v)
				w.WriteHeader(http.StatusServiceUnavailable)
			}))
			defer srv.Close()
			c := newClient(t, testConfig())
			resp, d, err := get(context.Background(), c, srv.URL)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != 503 || attempts.Load() != 1 || d > 500*time.Millisecond {
				t.Fatalf("got %d after %d attempts in %v; want the 503 at once", resp.StatusCode, attempts.Load(), d)
			}
			_, d, err = get(context.Background(), c, srv.URL)
			if !errors.Is(err, ratelimit.ErrLimited) || d > 500*time.Millisecond {
				t.Fatalf("second call: %v after %v; want ratelimit.ErrLimited at once", err, d)
			}
			if attempts.Load() != 1 {
				t.Fatalf("second call reached the upstream during its pushback")
			}
			if got := outbound.StatusFor(err); got != 503 {
				t.Errorf("StatusFor = %d; want 503", got)
			}
		})
	}
}

// TestHostileRetryAfterCappedWithinBudget: with MaxRetryAfter shorter than the
// budget, a huge Retry-After is waited for MaxRetryAfter and the call retried:
// the limiter's own pushback must not refuse the very retry that the retry
// layer scheduled.
func TestHostileRetryAfterCappedWithinBudget(t *testing.T) {
	var attempts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if attempts.Add(1) == 1 {
			w.Header().Set("Retry-After", "1000000000000")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	cfg := testConfig()
	cfg.MaxRetryAfter = 100 * time.Millisecond
	c := newClient(t, cfg)
	resp, d, err := get(context.Background(), c, srv.URL)
	if err != nil {
		t.Fatalf("call: %v (after %v, %d attempts)", err, d, attempts.Load())
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || d < 100*time.Millisecond || d > time.Second {
		t.Fatalf("got %d after %v; want 200 after the capped 100 ms wait", resp.StatusCode, d)
	}
}

// TestHostileRetryAfterGarbage: negative, fractional and garbage Retry-After
// values are ignored and the backoff applies: the call succeeds quickly.
func TestHostileRetryAfterGarbage(t *testing.T) {
	for _, v := range []string{"-5", "-1000000000000", "1.5", "soon", "Mon, 32 Foo 2024 99:99:99 GMT", "0x10", " ", "\u00a0", strings.Repeat("9", 4096) + "x"} {
		t.Run(fmt.Sprintf("%.12q", v), func(t *testing.T) {
			var attempts attemptCounter
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if attempts.next(r) < 2 {
					w.Header().Set("Retry-After", v)
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
				io.WriteString(w, "ok")
			}))
			defer srv.Close()
			c := newClient(t, testConfig())
			resp, d, err := get(context.Background(), c, srv.URL)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || d > time.Second {
				t.Fatalf("got %d after %v; want 200 after two short backoffs", resp.StatusCode, d)
			}
		})
	}
}

// TestHostileCloseMidBody: the upstream promises 1000 bytes, sends 100 and
// closes. The caller's read fails with io.ErrUnexpectedEOF, at once; on a
// retried 503 the same truncation costs nothing.
func TestHostileCloseMidBody(t *testing.T) {
	var n atomic.Int32
	srv := newRawServer(t, func(c net.Conn) {
		if _, ok := readRequest(bufio.NewReader(c)); !ok {
			return
		}
		status := "200 OK"
		if n.Add(1)%2 == 1 {
			status = "503 Service Unavailable"
		}
		fmt.Fprintf(c, "HTTP/1.1 %s\r\nContent-Length: 1000\r\n\r\n%s", status, strings.Repeat("x", 100))
		// Returning closes the connection mid-body.
	})
	c := newClient(t, testConfig())
	for i := 0; i < 3; i++ {
		resp, _, err := get(context.Background(), c, srv.URL())
		if err != nil {
			t.Fatalf("call: %v", err)
		}
		start := time.Now()
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !errors.Is(err, io.ErrUnexpectedEOF) || len(b) != 100 {
			t.Fatalf("got %d, %d bytes, %v; want 200, 100 bytes, io.ErrUnexpectedEOF", resp.StatusCode, len(b), err)
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Fatalf("truncated read took %v", d)
		}
	}
}

// TestHostileTrickle: a body that trickles one byte at a time is read to the
// end when bytes keep coming within the idle timeout; fails with
// base.ErrBodyIdle when a gap exceeds it; and is cut off by the total
// budget when it would never end. (A small body is read inside the attempt
// (Config.ResponseBuffer), so the call may fail in Do rather than while the
// caller reads.)
func TestHostileTrickle(t *testing.T) {
	trickle := func(every time.Duration, n int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			for i := 0; n == 0 || i < n; i++ {
				if _, err := w.Write([]byte{'x'}); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(every):
				}
			}
		})
	}
	read := func(t *testing.T, cfg outbound.Config, h http.Handler) (int, time.Duration, error) {
		srv := httptest.NewServer(h)
		defer srv.Close()
		c := newClient(t, cfg)
		start := time.Now()
		resp, _, err := get(context.Background(), c, srv.URL)
		if err != nil {
			return 0, time.Since(start), err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		return len(b), time.Since(start), err
	}

	t.Run("steady", func(t *testing.T) {
		n, _, err := read(t, testConfig(), trickle(10*time.Millisecond, 30))
		if err != nil || n != 30 {
			t.Fatalf("read %d bytes, %v; want all 30", n, err)
		}
	})
	t.Run("gap-beyond-idle-timeout", func(t *testing.T) {
		cfg := testConfig()
		cfg.BodyIdleTimeout = 100 * time.Millisecond
		n, d, err := read(t, cfg, trickle(time.Second, 5))
		if !errors.Is(err, base.ErrBodyIdle) || n != 1 || d > time.Second {
			t.Fatalf("read %d bytes, %v after %v; want 1 byte then ErrBodyIdle after ~100ms", n, err, d)
		}
	})
	t.Run("never-ends", func(t *testing.T) {
		cfg := testConfig()
		cfg.TotalBudget = 500 * time.Millisecond
		n, d, err := read(t, cfg, trickle(20*time.Millisecond, 0))
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || d > 1500*time.Millisecond {
			t.Fatalf("read %d bytes, %v after %v; want the budget's deadline after ~500ms", n, err, d)
		}
		t.Logf("endless trickle cut after %v, %d bytes: %v", d, n, err)
	})
}

// TestHostileWrongContentLength: framing lies end in an error or a correctly
// framed read, never a hang or a body longer than declared.
func TestHostileWrongContentLength(t *testing.T) {
	for _, tc := range []struct {
		name     string
		response string
		close    bool // close after writing
		wantBody string
		wantErr  bool // error from Do or from reading the body
		// The excess bytes stay in the connection: net/http finds them and
		// closes it when its read loop next looks, but may hand the idle
		// connection to the next call first, which then reads them as its
		// status line and fails as a protocol error (not retried:
		// retry/classify.go). That call may fail so, and no other way.
		poisonsNext bool
	}{
		{"shorter-than-declared", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", true, "short", true, false},
		{"longer-than-declared", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello, and then some garbage", false, "hello", false, true},
		{"conflicting", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", true, "", true, false},
		{"negative", "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello", true, "", true, false},
		{"not-a-number", "HTTP/1.1 200 OK\r\nContent-Length: five\r\n\r\nhello", true, "", true, false},
		{"huge", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nhello", true, "", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newRawServer(t, func(c net.Conn) {
				br := bufio.NewReader(c)
				for {
					if _, ok := readRequest(br); !ok {
						return
					}
					io.WriteString(c, tc.response)
					if tc.close {
						return
					}
				}
			})
			c := newClient(t, testConfig())
			// Twice: the second call may land on a connection the first left
			// in a bad state.
			for i := 0; i < 2; i++ {
				resp, d, err := get(context.Background(), c, srv.URL())
				var b []byte
				if err == nil {
					b, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				if d > time.Second {
					t.Fatalf("call %d took %v", i, d)
				}
				if i > 0 && tc.poisonsNext && err != nil && strings.Contains(err.Error(), "malformed HTTP") {
					continue // the first call's excess bytes, read as this call's status line
				}
				if (err != nil) != tc.wantErr {
					t.Fatalf("call %d: error %v; want error: %v", i, err, tc.wantErr)
				}
				if string(b) != tc.wantBody {
					t.Fatalf("call %d: body %q; want %q", i, b, tc.wantBody)
				}
			}
		})
	}
}

// TestHostile1xxFlood: an upstream that answers with endless 100 Continue and
// 103 Early Hints responses is cut off by the header size limit (1xx headers
// count against it) or the response-header timeout, never a hang; a modest
// number of 1xx before the real answer is fine.
func TestHostile1xxFlood(t *testing.T) {
	for _, tc := range []struct {
		name  string
		count int // 0: endless
	}{{"fifty-then-200", 50}, {"endless", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			var wrote, conns atomic.Int64
			srv := newRawServer(t, func(c net.Conn) {
				conns.Add(1)
				br := bufio.NewReader(c)
				if _, ok := readRequest(br); !ok {
					return
				}
				bw := bufio.NewWriter(c)
				stop := time.Now().Add(5 * time.Second)
				for i := 0; (tc.count == 0 || i < tc.count) && time.Now().Before(stop); i++ {
					var err error
					if i%2 == 0 {
						_, err = io.WriteString(bw, "HTTP/1.1 100 Continue\r\n\r\n")
					} else {
						_, err = io.WriteString(bw, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
					}
					if err != nil {
						return
					}
					wrote.Add(1)
				}
				io.WriteString(bw, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
				bw.Flush()
			})
			c := newClient(t, testConfig())
			resp, d, err := get(context.Background(), c, srv.URL())
			if tc.count > 0 {
				if err != nil {
					t.Fatalf("call: %v", err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != "ok" {
					t.Fatalf("body %q", b)
				}
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatalf("endless 1xx flood gave %d", resp.StatusCode)
			}
			if !strings.Contains(err.Error(), "server response headers exceeded 1048576 bytes") || d > 2*time.Second {
				t.Errorf("flood cut off after %v by %v; want the 1 MiB header limit", d, err)
			}
			if n := conns.Load(); n != 1 {
				t.Errorf("%d connections; the flood must not be retried", n)
			}
			t.Logf("endless 1xx flood: %v after %v, %d informational responses written", err, d, wrote.Load())
		})
	}
}

// TestHostileRedirectCrossHost: the API key that transport/header adds is
// sent to the host the caller asked for and to redirects on that host, never
// to another host; Go's redirect rules (10 hops, 303 turns POST into GET,
// caller-set Authorization dropped across hosts) still apply.
func TestHostileRedirectCrossHost(t *testing.T) {
	var mu sync.Mutex
	seen := map[string][]string{} // path on each server -> Authorization values
	record := func(name string, r *http.Request) {
		mu.Lock()
		seen[name+r.URL.Path] = append(seen[name+r.URL.Path], r.Header.Get("Authorization"))
		mu.Unlock()
	}
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record("other", r)
		io.WriteString(w, "other")
	}))
	defer other.Close()
	// Another host name for the same loopback address: "localhost" instead of
	// "127.0.0.1". (A different port alone is the same host to Go's redirect
	// rules, which compare host names.)
	_, port, _ := net.SplitHostPort(other.Listener.Addr().String())
	otherURL := "http://localhost:" + port
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record("origin", r)
		switch r.URL.Path {
		case "/same":
			http.Redirect(w, r, "/landing", http.StatusFound)
		case "/cross":
			http.Redirect(w, r, otherURL+"/landing", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		default:
			io.WriteString(w, "origin")
		}
	}))
	defer origin.Close()
	c := newClient(t, testConfig())
	bearer := "Bearer " + testAPIKey

	do := func(path, auth string) (string, error) {
		req, _ := http.NewRequest(http.MethodGet, origin.URL+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := c.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if b, err := do("/same", ""); err != nil || b != "origin" {
		t.Fatalf("same-host redirect: %q %v", b, err)
	}
	if b, err := do("/cross", ""); err != nil || b != "other" {
		t.Fatalf("cross-host redirect: %q %v", b, err)
	}
	if b, err := do("/cross", "Bearer caller-token"); err != nil || b != "other" {
		t.Fatalf("cross-host redirect with caller's header: %q %v", b, err)
	}
	start := time.Now()
	if _, err := do("/loop", ""); err == nil || !strings.Contains(err.Error(), "stopped after 10 redirects") {
		t.Fatalf("redirect loop: %v; want Go's 10-redirect limit", err)
	} else if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("redirect loop took %v", d)
	}

	mu.Lock()
	defer mu.Unlock()
	want := map[string][]string{
		"origin/same":    {bearer},
		"origin/landing": {bearer},
		"origin/cross":   {bearer, "Bearer caller-token"},
		"other/landing":  {"", ""},
	}
	for k, v := range want {
		if fmt.Sprint(seen[k]) != fmt.Sprint(v) {
			t.Errorf("%s saw Authorization %q; want %q", k, seen[k], v)
		}
	}
	if n := len(seen["origin/loop"]); n != 10 {
		t.Errorf("redirect loop: %d requests; want 10", n)
	}
	for _, a := range seen["origin/loop"] {
		if a != bearer {
			t.Errorf("same-host redirect lost the API key: %q", a)
		}
	}
}

// TestHostileTLS: a TLS upstream works through the standard stack with the
// base transport's TLS settings; one that accepts TCP and never completes the
// handshake trips the TLS handshake timeout on every attempt and the call ends
// within the budget; a certificate the client does not trust fails at once
// and is not retried.
func TestHostileTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted case logs a handshake error
	srv.StartTLS()
	defer srv.Close()
	tlsCfg := srv.Client().Transport.(*http.Transport).TLSClientConfig
	cfg := testConfig()

	t.Run("ok", func(t *testing.T) {
		base := base.New(base.WithTLSConfig(tlsCfg), base.WithTLSHandshakeTimeout(cfg.TLSHandshakeTimeout))
		c := newClient(t, cfg, outbound.WithBase(base))
		resp, _, err := get(context.Background(), c, srv.URL)
		if err != nil {
			t.Fatalf("call: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.TLS == nil {
			t.Fatalf("got %d %q, TLS %v", resp.StatusCode, b, resp.TLS != nil)
		}
	})

	t.Run("untrusted", func(t *testing.T) {
		c := newClient(t, cfg) // system roots: the test CA is not among them
		resp, d, err := get(context.Background(), c, srv.URL)
		if err == nil {
			resp.Body.Close()
			t.Fatal("untrusted certificate accepted")
		}
		if !strings.Contains(err.Error(), "certificate") || d > time.Second {
			t.Fatalf("%v after %v; want a certificate error at once", err, d)
		}
	})

	t.Run("handshake-never-completes", func(t *testing.T) {
		var accepted atomic.Int32
		silent := newRawServer(t, func(c net.Conn) {
			accepted.Add(1)
			io.Copy(io.Discard, c) // read the ClientHello, answer nothing
		})
		base := base.New(base.WithTLSConfig(tlsCfg), base.WithTLSHandshakeTimeout(cfg.TLSHandshakeTimeout))
		c := newClient(t, cfg, outbound.WithBase(base))
		url := "https://" + strings.TrimPrefix(silent.URL(), "http://")
		resp, d, err := get(context.Background(), c, url)
		if err == nil {
			resp.Body.Close()
			t.Fatal("stalled handshake gave a response")
		}
		if !strings.Contains(err.Error(), "TLS handshake timeout") {
			t.Errorf("error %q does not name the TLS handshake timeout", err)
		}
		if outbound.StatusFor(err) != http.StatusGatewayTimeout {
			t.Errorf("StatusFor = %d; want 504", outbound.StatusFor(err))
		}
		n := int(accepted.Load())
		if n < 1 || n > cfg.MaxAttempts || d > cfg.TotalBudget+time.Second {
			t.Fatalf("%d handshakes in %v; want 1..%d within the %v budget", n, d, cfg.MaxAttempts, cfg.TotalBudget)
		}
		t.Logf("stalled handshake: %d attempts, %v: %v", n, d, err)
	})
}

// TestHostileNoResponseHeaders: an upstream that reads the request and never
// answers trips the response-header timeout on each attempt; the call ends
// within the budget with an error StatusFor maps to 504.
func TestHostileNoResponseHeaders(t *testing.T) {
	var attempts atomic.Int32
	srv := newRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, ok := readRequest(br); !ok {
			return
		}
		attempts.Add(1)
		io.Copy(io.Discard, br) // hold the connection open, answer nothing
	})
	cfg := testConfig()
	cfg.ResponseHeaderTimeout = 200 * time.Millisecond
	c := newClient(t, cfg)
	resp, d, err := get(context.Background(), c, srv.URL())
	if err == nil {
		resp.Body.Close()
		t.Fatal("got a response")
	}
	if outbound.StatusFor(err) != http.StatusGatewayTimeout || d > cfg.TotalBudget+time.Second {
		t.Fatalf("%v after %v (StatusFor %d); want a timeout within the budget", err, d, outbound.StatusFor(err))
	}
	if n := attempts.Load(); n < 2 || int(n) > cfg.MaxAttempts {
		t.Fatalf("%d attempts; want retries of the timed-out GET, at most %d", n, cfg.MaxAttempts)
	}
}

// TestHostileRedirectChainBudget: the total budget bounds the whole call,
// redirects included. An upstream that answers every request slowly with a
// redirect must not get the budget once per hop.
func TestHostileRedirectChainBudget(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(400 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		if n < 4 {
			http.Redirect(w, r, "/?n="+strconv.Itoa(n+1), http.StatusFound)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	cfg := testConfig()
	cfg.TotalBudget = time.Second
	c := newClient(t, cfg)
	resp, d, err := get(context.Background(), c, srv.URL)
	if err == nil {
		resp.Body.Close()
	}
	if err == nil || d > 1500*time.Millisecond {
		t.Fatalf("redirect chain: %v after %v; want the 1 s budget exhausted after about 1 s", err, d)
	}
}
