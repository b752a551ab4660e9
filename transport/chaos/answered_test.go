package chaos

import (
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// gatedConn holds every write until gate is closed.
type gatedConn struct {
	net.Conn
	gate <-chan struct{}
}

func (c gatedConn) Write(p []byte) (int, error) {
	<-c.gate
	return c.Conn.Write(p)
}

type gatedListener struct {
	net.Listener
	gate <-chan struct{}
}

func (l gatedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return gatedConn{Conn: c, gate: l.gate}, nil
}

// TestAnsweredWhenTheAnswerLeft: a whole answer's Answered, and the
// NotBefore of its Retry-After, count from when it was written to the
// connection, not from when it was decided: a request that arrives between
// the two comes from a client that could not have read it yet. The record
// is in Records before the answer leaves, so a client that has the answer
// finds it there (with the time it was decided, until the write returns).
func TestAnsweredWhenTheAnswerLeft(t *testing.T) {
	s := NewServer(Scenario{Faults: []Fault{Burst(0, time.Second)}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	srv := &http.Server{Handler: s}
	var wg sync.WaitGroup
	wg.Go(func() { srv.Serve(gatedListener{Listener: ln, gate: gate}) })
	defer func() {
		srv.Close()
		wg.Wait()
	}()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	got := make(chan int, 1)
	wg.Go(func() {
		resp, err := (&http.Client{Transport: tr}).Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			t.Error(err)
			got <- 0
			return
		}
		resp.Body.Close()
		got <- resp.StatusCode
	})
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Records()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no record while the answer waits to be written")
		}
		time.Sleep(time.Millisecond) // for the server's goroutine to reach the write, not for time to pass
	}
	released := time.Now()
	close(gate)
	if st := <-got; st != http.StatusTooManyRequests {
		t.Fatalf("status %d; want 429", st)
	}
	// The server's goroutine moves the time once its write has returned,
	// which may be just after the client has read the answer.
	for r := s.Records()[0]; r.Answered.Before(released) || !r.NotBefore.Equal(r.Answered.Add(time.Second)); r = s.Records()[0] {
		if time.Now().After(deadline) {
			t.Fatalf("answered %v, not before %v; want from when the answer was let out (%v) and a second later",
				r.Answered, r.NotBefore, released)
		}
		time.Sleep(time.Millisecond) // for the server's goroutine, not for time to pass
	}
}
