package hedge_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outboundhttp/outbound/internal/callctx"
)

const testURL = "http://api.test/v1/things"

// answer is what the fake upstream does with the i-th request it gets (0 for
// the first): wait d (or until the request's context ends), then answer
// status, or fail with err when err is not nil.
type answer struct {
	d      time.Duration
	status int
	err    error
}

// fake is a next RoundTripper that behaves as net/http's Transport does
// where hedging depends on it: it reads and closes the request body, waits
// with the request's context, fails when that context ends, and gives bodies
// whose reads fail once it has ended. It records every request.
type fake struct {
	script func(i int, r *http.Request) answer

	mu     sync.Mutex
	calls  []*seen
	bodies []*trackedBody
	idle   int
}

// seen is one request as the fake saw it.
type seen struct {
	i      int
	ctx    context.Context
	typ    callctx.AttemptType
	body   string
	bodyOK bool
	at     time.Time
	ended  chan struct{} // closed when the fake returned
}

func newFake(script func(i int, r *http.Request) answer) *fake { return &fake{script: script} }

func (f *fake) RoundTrip(r *http.Request) (*http.Response, error) {
	s := &seen{ctx: r.Context(), typ: callctx.AttemptTypeOf(r.Context()), at: time.Now(), ended: make(chan struct{})}
	defer close(s.ended)
	if r.Body != nil {
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		s.body, s.bodyOK = string(b), err == nil
	}
	f.mu.Lock()
	s.i = len(f.calls)
	f.calls = append(f.calls, s)
	script := f.script
	f.mu.Unlock()
	a := script(s.i, r)
	if a.d > 0 {
		t := time.NewTimer(a.d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return nil, context.Cause(r.Context())
		}
	}
	if err := r.Context().Err(); err != nil {
		return nil, context.Cause(r.Context())
	}
	if a.err != nil {
		return nil, a.err
	}
	return f.respond(r, a.status, fmt.Sprintf("answer %d", s.i)), nil
}

func (f *fake) respond(r *http.Request, status int, text string) *http.Response {
	b := &trackedBody{ctx: r.Context(), r: strings.NewReader(text)}
	f.mu.Lock()
	f.bodies = append(f.bodies, b)
	f.mu.Unlock()
	return &http.Response{StatusCode: status, Header: http.Header{}, Body: b, ContentLength: int64(len(text)), Request: r}
}

func (f *fake) setScript(script func(i int, r *http.Request) answer) {
	f.mu.Lock()
	f.script = script
	f.mu.Unlock()
}

func (f *fake) CloseIdleConnections() {
	f.mu.Lock()
	f.idle++
	f.mu.Unlock()
}

func (f *fake) seen() []*seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*seen(nil), f.calls...)
}

// checkBodies fails for every response body of the fake that is not closed,
// or not drained when it was not the one returned (keep).
func (f *fake) checkBodies(t *testing.T, keep *http.Response) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, b := range f.bodies {
		closed, drained := b.state()
		if !closed {
			t.Errorf("response body %d of %d not closed", i+1, len(f.bodies))
		}
		if keep != nil && b.ctx == keep.Request.Context() {
			continue
		}
		if !drained {
			t.Errorf("discarded response body %d of %d not drained before Close", i+1, len(f.bodies))
		}
	}
}

// trackedBody is a response body whose reads fail once its request's
// context has ended, like net/http's.
type trackedBody struct {
	ctx context.Context

	mu      sync.Mutex
	r       *strings.Reader
	closed  bool
	drained bool
	alive   bool // its request's context had not ended when it was closed
}

func (b *trackedBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errors.New("read on a closed body")
	}
	if b.ctx.Err() != nil {
		return 0, context.Cause(b.ctx)
	}
	return b.r.Read(p)
}

func (b *trackedBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed, b.drained, b.alive = true, b.r.Len() == 0, b.ctx.Err() == nil
	}
	return nil
}

// state reports whether the body was closed, and whether it was drained
// before, as far as it could be: a body whose context had ended could not.
func (b *trackedBody) state() (closed, drained bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed, b.drained || !b.alive
}

// events is a callctx.Recorder that keeps what it gets.
type events struct {
	mu  sync.Mutex
	got []callctx.Event
}

func (e *events) Record(_ context.Context, ev callctx.Event) {
	e.mu.Lock()
	e.got = append(e.got, ev)
	e.mu.Unlock()
}

func (e *events) of(k callctx.Kind) []callctx.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var l []callctx.Event
	for _, ev := range e.got {
		if ev.Kind == k {
			l = append(l, ev)
		}
	}
	return l
}

func get(t *testing.T, ctx context.Context) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, testURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// readAll reads and closes resp's body, failing the test on a read error.
func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return string(b)
}

// bodyFactory makes the request bodies of one call: the caller's and each
// one GetBody returns. It counts them and notes a body read by two readers
// at once.
type bodyFactory struct {
	payload string
	overlap atomic.Bool
	made    atomic.Int32
}

func (f *bodyFactory) new() io.ReadCloser {
	f.made.Add(1)
	return &guardedBody{f: f, r: strings.NewReader(f.payload)}
}

// guardedBody is one body of a bodyFactory; reading one body from two
// attempts at once is flagged (the hedgedhttp bug).
type guardedBody struct {
	f       *bodyFactory
	r       *strings.Reader
	readers atomic.Int32
}

func (b *guardedBody) Read(p []byte) (int, error) {
	if b.readers.Add(1) > 1 {
		b.f.overlap.Store(true)
	}
	defer b.readers.Add(-1)
	// A slow body (4 bytes a millisecond), still being read when a hedge
	// goes out, so that two readers of one body would meet.
	time.Sleep(time.Millisecond)
	return b.r.Read(p[:min(len(p), 4)])
}

func (b *guardedBody) Close() error { return nil }
