package hedge_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outboundhttp/outbound/transport/hedge"
)

// heldConn is a client connection whose reads wait until release is closed:
// the answer reaches the client's socket and stays there, unread, as it does
// when a busy runtime has not yet looked for readable sockets while the
// hedge timer fires on time. Embedding *net.TCPConn keeps SyscallConn, so
// the socket can still be asked.
type heldConn struct {
	*net.TCPConn
	release <-chan struct{}
}

func (c *heldConn) Read(p []byte) (int, error) {
	<-c.release
	return c.TCPConn.Read(p)
}

// answeredScenario runs one GET through a hedge layer with a fixed delay
// over connections whose reads are held. The server answers the first
// request with 429 and Retry-After when answerFirst is true, and otherwise
// not before a second request (a hedge) has arrived. It returns how many
// requests the server got while the answer sat unread, and the status the
// call ended with.
func answeredScenario(t *testing.T, answerFirst bool) (requests int32, status int) {
	t.Helper()
	const delay = 300 * time.Millisecond
	var n atomic.Int32
	answered := make(chan time.Time, 1)
	second := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) {
		case 1:
			if !answerFirst {
				select {
				case <-second:
				case <-r.Context().Done():
					return
				case <-time.After(5 * time.Second):
				}
			}
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			w.(http.Flusher).Flush()
			answered <- time.Now()
		case 2:
			close(second)
			io.WriteString(w, "from the hedge")
		}
	}))
	defer srv.Close()

	release := make(chan struct{})
	base := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &heldConn{TCPConn: c.(*net.TCPConn), release: release}, nil
	}}
	defer base.CloseIdleConnections()
	client := &http.Client{Transport: hedge.NewTransport(base, hedge.WithDelay(delay))}

	start := time.Now()
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := client.Get(srv.URL)
		done <- result{resp, err}
	}()

	if answerFirst {
		select {
		case at := <-answered:
			if at.Sub(start) > delay/2 {
				// The order this test needs, answer first, timer second, was
				// not arranged: the machine is too slow for it now.
				close(release)
				r := <-done
				if r.err == nil {
					r.resp.Body.Close()
				}
				t.Skipf("the server answered %v after the call started; the hedge delay is %v", at.Sub(start), delay)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the server never answered")
		}
	}
	// A hedge would arrive soon after the delay; wait that long again (or,
	// in the control, for as long as the server waits for it).
	bound := 10 * time.Second
	if answerFirst {
		bound = 2 * delay
	}
	select {
	case <-second:
	case <-time.After(bound):
	}
	requests = n.Load()
	close(release)
	r := <-done
	if r.err != nil {
		t.Fatalf("call: %v", r.err)
	}
	io.Copy(io.Discard, r.resp.Body)
	r.resp.Body.Close()
	return requests, r.resp.StatusCode
}

// TestNoHedgeWhileTheAnswerWaitsInTheSocket: the first attempt's 429 with
// Retry-After has reached the client's socket but has not been read when the
// hedge timer fires. The hedge layer asks the socket, sends no hedge, and
// the call ends with the 429 for the retry layer above, so the upstream
// never sees a second request from a call it asked to wait.
func TestNoHedgeWhileTheAnswerWaitsInTheSocket(t *testing.T) {
	requests, status := answeredScenario(t, true)
	if requests != 1 {
		t.Errorf("the server got %d requests while its 429 waited unread in the client's socket; want 1 (no hedge)", requests)
	}
	if status != http.StatusTooManyRequests {
		t.Errorf("status %d; want the first attempt's 429", status)
	}
}

// TestHedgeWhileNoAnswerWaits is the control: with nothing in the socket
// when the timer fires, the same held connections do get a hedge, which
// wins.
func TestHedgeWhileNoAnswerWaits(t *testing.T) {
	requests, status := answeredScenario(t, false)
	if requests != 2 {
		t.Errorf("the server got %d requests; want 2 (the first attempt and its hedge)", requests)
	}
	if status != http.StatusOK {
		t.Errorf("status %d; want the hedge's 200", status)
	}
}
