package hedge_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outboundhttp/outbound/transport/hedge"
)

// TestEndToEndHedgeWins: over real connections, a POST with an
// Idempotency-Key whose first copy hangs is answered by its hedge; both
// copies reach the server with the whole body, and the first is canceled
// there (its connection closed under it).
func TestEndToEndHedgeWins(t *testing.T) {
	const payload = "order #42: two of them"
	var n atomic.Int32
	var mu sync.Mutex
	var bodies []string
	canceled := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		if n.Add(1) == 1 {
			select {
			case <-r.Context().Done():
				close(canceled)
			case <-time.After(10 * time.Second):
			}
			return
		}
		io.WriteString(w, "from the hedge")
	}))
	defer srv.Close()
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	client := &http.Client{Transport: hedge.NewTransport(base, hedge.WithDelay(20*time.Millisecond))}

	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(payload))
	req.Header.Set("Idempotency-Key", `"order-42"`)
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); got != "from the hedge" {
		t.Errorf("body %q; want the hedge's", got)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the call took %v; want the hedge's answer, not the hung first copy's", d)
	}
	select {
	case <-canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("the server never saw the first copy canceled")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 2 || bodies[0] != payload || bodies[1] != payload {
		t.Errorf("the server got bodies %q; want the whole payload twice", bodies)
	}
}

// TestEndToEndLoserDrained: a first copy that loses with a 503 after its
// hedge went out is drained, so its connection serves later calls: ten
// hedged calls take two connections, not eleven.
func TestEndToEndLoserDrained(t *testing.T) {
	var conns atomic.Int32
	var mu sync.Mutex
	calls := map[string]int{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.Header.Get("X-Call")]++
		first := calls[r.Header.Get("X-Call")] == 1
		mu.Unlock()
		if first {
			time.Sleep(40 * time.Millisecond) // after the hedge went out, before it answers
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "busy")
			return
		}
		time.Sleep(60 * time.Millisecond)
		io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	rt := hedge.NewTransport(base, hedge.WithDelay(20*time.Millisecond))
	for i := range 10 {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("X-Call", string(rune('a'+i)))
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, resp); resp.StatusCode != 200 || got != "ok" {
			t.Fatalf("call %d: %d %q; want the hedge's 200", i, resp.StatusCode, got)
		}
	}
	// Two connections at a time; a third now and then if a drained
	// connection is back in the pool a moment after the next call dials.
	if n := conns.Load(); n > 4 {
		t.Errorf("%d connections for 10 hedged calls; want about 2 (the losers' drained and reused)", n)
	}
}
