package retry

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// trackBody records whether it was read to the end and closed.
type trackBody struct {
	mu     sync.Mutex
	r      io.Reader
	eof    bool
	closed bool
}

func newTrackBody(s string) *trackBody { return &trackBody{r: strings.NewReader(s)} }

func (b *trackBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, io.ErrClosedPipe
	}
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *trackBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

func (b *trackBody) state() (eof, closed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.eof, b.closed
}

// scripted is a fake base that answers attempt i with statuses[i] (or the
// last one), recording each request it saw, when it saw it, and every body it
// handed out.
type scripted struct {
	mu       sync.Mutex
	statuses []int
	headers  []http.Header // optional, per attempt
	reqs     []*http.Request
	at       []time.Time // when each request arrived
	bodies   []string    // request bodies read
	resps    []*trackBody
}

func (s *scripted) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody string
	if req.Body != nil {
		b, _ := io.ReadAll(req.Body)
		req.Body.Close()
		reqBody = string(b)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i := len(s.reqs)
	s.reqs = append(s.reqs, req)
	s.at = append(s.at, time.Now())
	s.bodies = append(s.bodies, reqBody)
	code := s.statuses[min(i, len(s.statuses)-1)]
	h := http.Header{}
	if i < len(s.headers) && s.headers[i] != nil {
		h = s.headers[i].Clone()
	}
	tb := newTrackBody("attempt " + string(rune('0'+i)))
	s.resps = append(s.resps, tb)
	return &http.Response{StatusCode: code, Header: h, Body: tb, Request: req}, nil
}

func (s *scripted) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

// waits returns the time between each attempt and the next. In a
// testing/synctest bubble nothing but the layer's wait moves the clock
// between two attempts of a scripted base, so these are the waits exactly.
func (s *scripted) waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ws []time.Duration
	for i := 1; i < len(s.at); i++ {
		ws = append(ws, s.at[i].Sub(s.at[i-1]))
	}
	return ws
}

func mustRequest(t testing.TB, ctx context.Context, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func readAll(t testing.TB, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	resp.Body.Close()
	return string(b)
}

// noGetBody is a body that http.NewRequest cannot make rewindable.
type noGetBody struct{ io.Reader }

func (noGetBody) Close() error { return nil }
