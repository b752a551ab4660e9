package retry

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outboundhttp/outbound/internal/callctx"
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// fakeClock is a clock whose sleep advances time instead of waiting.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.t = c.t.Add(d)
	return nil
}

func (c *fakeClock) waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

func (c *fakeClock) option() Option { return WithClock(c.now, c.sleep) }

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
// last one), recording each request it saw and every body it handed out.
type scripted struct {
	mu       sync.Mutex
	statuses []int
	headers  []http.Header // optional, per attempt
	reqs     []*http.Request
	bodies   []string // request bodies read
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

// recorder collects callctx events.
type recorder struct {
	mu  sync.Mutex
	evs []callctx.Event
}

func (r *recorder) Record(_ context.Context, ev callctx.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
}

func (r *recorder) events() []callctx.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]callctx.Event(nil), r.evs...)
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
