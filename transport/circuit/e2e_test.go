package circuit

// End-to-end over loopback sockets. synctest's fake clock cannot be used with
// real network I/O, so these tests use a short real break duration (50–200 ms)
// and wait for state changes by polling with a deadline, never with a bare
// sleep as the assertion.

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

type upstreamServer struct {
	*httptest.Server
	healthy atomic.Bool
	hits    atomic.Int32
}

func newUpstream(t *testing.T, healthy bool) *upstreamServer {
	u := &upstreamServer{}
	u.healthy.Store(healthy)
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		io.Copy(io.Discard, r.Body)
		if !u.healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(u.Close)
	return u
}

func newBase(t *testing.T) *http.Transport {
	b := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(b.CloseIdleConnections)
	return b
}

// call sends one GET through rt and reads the body to the end.
func call(t *testing.T, rt http.RoundTripper, url string) (int, error) {
	t.Helper()
	resp, err := rt.RoundTrip(get(t, url))
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// eventually polls cond every 5 ms until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestEndToEndOpenFailFastProbeRecover(t *testing.T) {
	const breakFor = 200 * time.Millisecond
	up := newUpstream(t, false)
	tr := NewTransport(newBase(t), WithMinRequests(5), WithBreakDuration(breakFor))
	for range 5 {
		if code, err := call(t, tr, up.URL); err != nil || code != 503 {
			t.Fatalf("got %d, %v; want 503", code, err)
		}
	}
	hits := up.hits.Load()

	// Open: refused at once, never reaching the server.
	var took []time.Duration
	for range 50 {
		start := time.Now()
		_, err := call(t, tr, up.URL)
		took = append(took, time.Since(start))
		if !errors.Is(err, ErrOpen) {
			t.Fatalf("open breaker: got %v; want ErrOpen", err)
		}
	}
	slices.Sort(took)
	if med := took[len(took)/2]; med >= time.Millisecond {
		t.Fatalf("median refusal took %v; want < 1ms", med)
	}
	t.Logf("refusal while open: median %v, max %v", took[len(took)/2], took[len(took)-1])
	if got := up.hits.Load(); got != hits {
		t.Fatalf("server saw %d requests while open; want 0", got-hits)
	}

	// After the break duration one probe goes out; it fails and reopens.
	eventually(t, 2*time.Second, "a probe reaches the server", func() bool {
		call(t, tr, up.URL)
		return up.hits.Load() > hits
	})
	if got := up.hits.Load() - hits; got != 1 {
		t.Fatalf("%d probes reached the server; want 1", got)
	}
	var oe *OpenError
	if _, err := call(t, tr, up.URL); !errors.As(err, &oe) || oe.State != Open || oe.RetryIn <= 0 || oe.RetryIn > breakFor {
		t.Fatalf("after a failed probe: got %v; want open again for about %v", err, breakFor)
	}

	// The upstream recovers: the next probe succeeds and closes the breaker.
	up.healthy.Store(true)
	hits = up.hits.Load()
	eventually(t, 2*time.Second, "a good probe closes the breaker", func() bool {
		code, err := call(t, tr, up.URL)
		return err == nil && code == 200
	})
	if got := up.hits.Load() - hits; got != 1 {
		t.Fatalf("%d requests reached the server before it closed; want 1 probe", got)
	}
	if s := tr.State(up.URL); s != Closed {
		// The key of up.URL is "http://127.0.0.1:port", already explicit.
		t.Fatalf("got %v; want closed", s)
	}
	for range 20 {
		if code, err := call(t, tr, up.URL); err != nil || code != 200 {
			t.Fatalf("closed: got %d, %v", code, err)
		}
	}
}

// TestEndToEndSlowBodyDoesNotHoldProbe: the outcome is reported when the
// headers arrive, so a probe whose body is still streaming has already closed
// the breaker.
func TestEndToEndSlowBodyDoesNotHoldProbe(t *testing.T) {
	release := make(chan struct{})
	var fail atomic.Bool
	fail.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			w.WriteHeader(503)
			return
		}
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	tr := NewTransport(newBase(t), WithMinRequests(2), WithBreakDuration(50*time.Millisecond))
	call(t, tr, srv.URL)
	call(t, tr, srv.URL)
	if s := tr.State(srv.URL); s != Open {
		t.Fatalf("got %v; want open", s)
	}
	fail.Store(false)
	var probe *http.Response
	eventually(t, 2*time.Second, "the probe is let through", func() bool {
		resp, err := tr.RoundTrip(get(t, srv.URL))
		probe = resp
		return err == nil
	})
	defer probe.Body.Close()
	// Body not read yet: the breaker is already closed and lets others through.
	if s := tr.State(srv.URL); s != Closed {
		t.Fatalf("probe headers received, body pending: got %v; want closed", s)
	}
}
