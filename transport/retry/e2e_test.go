package retry

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// server is an httptest server that counts accepted connections and requests
// and answers request i (0-based) with handle(i, w, r).
type server struct {
	*httptest.Server
	conns atomic.Int64
	reqs  atomic.Int64
}

func newServer(t *testing.T, handle func(i int, w http.ResponseWriter, r *http.Request)) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(s.reqs.Add(1) - 1)
		handle(i, w, r)
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// client returns a client whose base transport is private to the test and
// whose idle connections are closed at the end (for goleak).
func client(t *testing.T, opts ...Option) *http.Client {
	t.Helper()
	base := &http.Transport{MaxIdleConnsPerHost: 512, MaxConnsPerHost: 0}
	t.Cleanup(base.CloseIdleConnections)
	return &http.Client{Transport: NewTransport(base, opts...)}
}

var fast = WithBackoff(time.Millisecond, 5*time.Millisecond)

func TestE2EStatusesOneConnection(t *testing.T) {
	for _, tt := range []struct {
		name       string
		statuses   []int
		wantReqs   int64
		wantStatus int
	}{
		{"503 503 200", []int{503, 503, 200}, 3, 200},
		{"503 x4", []int{503, 503, 503, 503, 503}, 4, 503},
		{"400", []int{400, 200}, 1, 400},
		{"500", []int{500, 200}, 1, 500},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, func(i int, w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.statuses[i])
				// A body worth draining: without the drain the connection is lost.
				io.WriteString(w, "response "+strconv.Itoa(i)+" "+string(bytes.Repeat([]byte("x"), 4096)))
			})
			resp, err := client(t, fast).Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp)
			if resp.StatusCode != tt.wantStatus || srv.reqs.Load() != tt.wantReqs {
				t.Errorf("status %d after %d requests; want %d after %d", resp.StatusCode, srv.reqs.Load(), tt.wantStatus, tt.wantReqs)
			}
			if want := "response " + strconv.Itoa(int(tt.wantReqs-1)) + " "; len(body) < len(want) || body[:len(want)] != want {
				t.Errorf("body starts %q; want %q", body[:min(len(body), 20)], want)
			}
			if c := srv.conns.Load(); c != 1 {
				t.Errorf("server accepted %d connections; want 1 reused across attempts", c)
			}
		})
	}
}

// resetHandler aborts the connection with a TCP RST before any response.
func resetHandler(t *testing.T) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
	}
}

func TestE2EPostNotRetriedAfterReset(t *testing.T) {
	srv := newServer(t, resetHandler(t))
	resp, err := client(t, fast).Post(srv.URL, "text/plain", bytes.NewReader([]byte("charge $10")))
	if err == nil {
		resp.Body.Close()
		t.Fatal("got a response; want an error")
	}
	if n := srv.reqs.Load(); n != 1 {
		t.Errorf("POST reached the server %d times; want exactly 1", n)
	}
	var re *Error
	if !errors.As(err, &re) || !errors.Is(err, ErrNotIdempotent) {
		t.Errorf("err = %v; want *retry.Error with ErrNotIdempotent", err)
	}

	// The same failure on a GET is retried.
	srv2 := newServer(t, resetHandler(t))
	_, err = client(t, fast).Get(srv2.URL)
	if n := srv2.reqs.Load(); n != 4 || !errors.Is(err, ErrAttempts) {
		t.Errorf("GET: %d requests, err %v; want 4 and ErrAttempts", n, err)
	}
}

func TestE2EPostWithKeyRetriedSameKey(t *testing.T) {
	var mu sync.Mutex
	var keys []string
	srv := newServer(t, func(i int, w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		mu.Unlock()
		if i < 2 {
			w.WriteHeader(503)
		}
	})
	for _, opt := range []Option{nil, WithIdempotencyKeys()} {
		keys = nil
		srv.reqs.Store(0)
		req := mustRequest(t, context.Background(), "POST", srv.URL, bytes.NewReader([]byte("order")))
		if opt == nil {
			req.Header.Set("Idempotency-Key", "order-42")
		}
		resp, err := client(t, fast, opt).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || len(keys) != 3 || keys[0] == "" || keys[1] != keys[0] || keys[2] != keys[0] {
			t.Errorf("status %d keys %q; want 200 after 3 attempts with one key", resp.StatusCode, keys)
		}
	}
}

func TestE2EPutBodyIdenticalEachAttempt(t *testing.T) {
	payload := make([]byte, 256<<10)
	rand.Read(payload)
	var mismatches atomic.Int64
	srv := newServer(t, func(i int, w http.ResponseWriter, r *http.Request) {
		got, _ := io.ReadAll(r.Body)
		if !bytes.Equal(got, payload) {
			mismatches.Add(1)
		}
		if i < 2 {
			w.WriteHeader(503)
		}
	})
	req := mustRequest(t, context.Background(), "PUT", srv.URL, bytes.NewReader(payload))
	resp, err := client(t, fast).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || srv.reqs.Load() != 3 || mismatches.Load() != 0 {
		t.Errorf("status %d requests %d mismatched bodies %d; want 200, 3, 0", resp.StatusCode, srv.reqs.Load(), mismatches.Load())
	}
}

func TestE2EBodyWithoutGetBodySentOnce(t *testing.T) {
	srv := newServer(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(503)
	})
	req := mustRequest(t, context.Background(), "PUT", srv.URL, noGetBody{bytes.NewReader([]byte("stream"))})
	resp, err := client(t, fast).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || srv.reqs.Load() != 1 {
		t.Errorf("status %d requests %d; want the 503 after 1", resp.StatusCode, srv.reqs.Load())
	}
}

// pushbackServer answers the first request with 429 and header h, recording
// when it answered and when the next request arrived.
func pushbackServer(t *testing.T, h func() string) (*server, *time.Time, *time.Time) {
	var answered, next time.Time
	srv := newServer(t, func(i int, w http.ResponseWriter, r *http.Request) {
		if i == 0 {
			w.Header().Set("Retry-After", h())
			answered = time.Now()
			w.WriteHeader(429)
			return
		}
		next = time.Now()
	})
	return srv, &answered, &next
}

func TestE2ERetryAfterSecondsHonoured(t *testing.T) {
	srv, answered, next := pushbackServer(t, func() string { return "1" })
	resp, err := client(t, fast).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || srv.reqs.Load() != 2 {
		t.Fatalf("status %d requests %d; want 200 after 2", resp.StatusCode, srv.reqs.Load())
	}
	if gap := next.Sub(*answered); gap < time.Second || gap > 3*time.Second {
		t.Errorf("next request %v after the 429; want at least Retry-After: 1 (1s)", gap)
	}
}

func TestE2ERetryAfterDateHonoured(t *testing.T) {
	var at time.Time
	srv, _, next := pushbackServer(t, func() string {
		at = time.Now().Add(2 * time.Second).Truncate(time.Second)
		return at.UTC().Format(http.TimeFormat)
	})
	resp, err := client(t, fast).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d; want 200", resp.StatusCode)
	}
	if next.Before(at) {
		t.Errorf("next request at %v, before the Retry-After date %v", next.Format(time.StampMilli), at.Format(time.StampMilli))
	}
}

func TestE2ERetryAfterBeyondDeadlineReturnsAtOnce(t *testing.T) {
	srv, _, _ := pushbackServer(t, func() string { return "3600" })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	resp, err := client(t, fast).Do(mustRequest(t, ctx, "GET", srv.URL, nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || srv.reqs.Load() != 1 {
		t.Errorf("status %d requests %d; want the 429 after 1", resp.StatusCode, srv.reqs.Load())
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("took %v; want no sleep", el)
	}
}

func TestE2EGarbageRetryAfterFallsBackToBackoff(t *testing.T) {
	srv, _, _ := pushbackServer(t, func() string { return "in a while, maybe" })
	start := time.Now()
	resp, err := client(t, fast).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || srv.reqs.Load() != 2 || time.Since(start) > time.Second {
		t.Errorf("status %d requests %d in %v; want 200 after 2, quickly", resp.StatusCode, srv.reqs.Load(), time.Since(start))
	}
}

func TestE2ECancelDuringWait(t *testing.T) {
	srv := newServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "10")
		w.WriteHeader(503)
	})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err := client(t).Do(mustRequest(t, ctx, "GET", srv.URL, nil))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v; want context.Canceled", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("returned after %v; want promptly after the cancel", el)
	}
}

func TestE2EAttemptTimeoutBodyReadable(t *testing.T) {
	srv := newServer(t, func(i int, w http.ResponseWriter, r *http.Request) {
		if i == 0 {
			select { // hang past the attempt timeout
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		time.Sleep(50 * time.Millisecond) // body arrives after RoundTrip returned
		io.WriteString(w, "slow body")
	})
	var reasons []string
	c := client(t, fast, WithAttemptTimeout(300*time.Millisecond),
		WithOnRetry(func(ri RetryInfo) { reasons = append(reasons, ri.Reason) }))
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); got != "slow body" {
		t.Errorf("body = %q; want %q", got, "slow body")
	}
	if len(reasons) != 1 || reasons[0] != "timeout" {
		t.Errorf("reasons = %v; want [timeout]", reasons)
	}
}

// TestE2EFullOutageAmplification: with the upstream always 503, 200 concurrent
// callers, the retry budget keeps the load reaching the server within 1.25×
// of the callers' requests once warmed up; naive retrying is ~4×.
func TestE2EFullOutageAmplification(t *testing.T) {
	const callers, perCaller = 200, 10
	srv := newServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) })
	run := func(c *http.Client, n int) (sent, reached int64) {
		before := srv.reqs.Load()
		var wg sync.WaitGroup
		for range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range n {
					resp, err := c.Get(srv.URL)
					if err != nil {
						t.Error(err)
						return
					}
					if resp.StatusCode != 503 {
						t.Errorf("status %d; want the last 503", resp.StatusCode)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
		wg.Wait()
		return int64(callers * n), srv.reqs.Load() - before
	}

	c := client(t, fast)
	run(c, 1) // warm-up: the budget has seen some traffic
	sent, reached := run(c, perCaller)
	ratio := float64(reached) / float64(sent)
	t.Logf("full outage, %d callers: %d requests, %d reached the server: %.3fx", callers, sent, reached, ratio)
	if ratio > 1.25 {
		t.Errorf("amplification %.3fx; want <= 1.25x", ratio)
	}

	naive := client(t, fast, WithoutRetryBudget())
	sent, reached = run(naive, 2)
	t.Logf("without the budget: %d requests, %d reached the server: %.3fx", sent, reached, float64(reached)/float64(sent))
	if reached != 4*sent {
		t.Errorf("naive: %d reached; want 4x%d (the test can tell the difference)", reached, sent)
	}
}
