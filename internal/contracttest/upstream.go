package contracttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// upstream is the next RoundTripper of the layer under test. It behaves as
// net/http's Transport does where the contract depends on it, and records
// every request and body so the suite can check what the layer did with them.
type upstream struct {
	mu     sync.Mutex
	answer func(*http.Request) (*http.Response, error)
	calls  []*call
	resps  []*respBody // every response body handed out
	reqs   []*reqBody  // every request body handed out: originals and GetBody's
	idle   int
}

// call is one request the layer sent to next, as next saw it.
type call struct {
	method, url string
	header      http.Header
	reqBody     string
	ctx         context.Context
}

func newUpstream() *upstream {
	u := &upstream{}
	u.answer = u.ok
	return u
}

// RoundTrip reads and closes the request body, as net/http's Transport does
// on every path, fails if the request's context has ended, and otherwise
// gives the scenario's answer.
func (u *upstream) RoundTrip(r *http.Request) (*http.Response, error) {
	c := &call{method: r.Method, header: r.Header.Clone(), ctx: r.Context()}
	if r.URL != nil {
		c.url = r.URL.String()
	}
	if r.Body != nil {
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		c.reqBody = string(b)
	}
	u.mu.Lock()
	u.calls = append(u.calls, c)
	answer := u.answer
	u.mu.Unlock()
	if r.Context().Err() != nil {
		return nil, context.Cause(r.Context()) // what net/http returns
	}
	return answer(r)
}

// CloseIdleConnections counts the calls that reached next.
func (u *upstream) CloseIdleConnections() {
	u.mu.Lock()
	u.idle++
	u.mu.Unlock()
}

func (u *upstream) idleCloses() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.idle
}

func (u *upstream) setAnswer(f func(*http.Request) (*http.Response, error)) {
	u.mu.Lock()
	u.answer = f
	u.mu.Unlock()
}

func (u *upstream) callList() []*call {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]*call(nil), u.calls...)
}

func (u *upstream) lastCall() *call {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.calls) == 0 {
		return nil
	}
	return u.calls[len(u.calls)-1]
}

func (u *upstream) ok(r *http.Request) (*http.Response, error) {
	return u.respond(r, http.StatusOK, okText), nil
}

// respond builds a response shaped like one of net/http's Transport, with a
// tracked body whose reads fail once r's context has ended.
func (u *upstream) respond(r *http.Request, status int, text string) *http.Response {
	b := &respBody{ctx: r.Context(), r: strings.NewReader(text)}
	u.mu.Lock()
	u.resps = append(u.resps, b)
	u.mu.Unlock()
	resp := respondNoBody(r, status)
	resp.Body, resp.ContentLength = b, int64(len(text))
	return resp
}

// respondNoBody builds a response with a nil Body, which breaks the contract.
func respondNoBody(r *http.Request, status int) *http.Response {
	return &http.Response{
		Status:     strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode: status,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
		Request:    r,
	}
}

// request returns a caller's request for URL: a PUT (idempotent, so a retry
// layer may resend it) with a body and GetBody, or a GET without a body.
func (u *upstream) request(ctx context.Context, method string) *http.Request {
	req, err := http.NewRequestWithContext(ctx, method, URL, nil)
	if err != nil {
		panic(err)
	}
	req.Header.Set("X-Contract", "caller")
	if method != http.MethodGet {
		req.Body = u.newReqBody()
		req.ContentLength = int64(len(payload))
		req.GetBody = func() (io.ReadCloser, error) { return u.newReqBody(), nil }
	}
	return req
}

func (u *upstream) newReqBody() *reqBody {
	b := &reqBody{r: strings.NewReader(payload)}
	u.mu.Lock()
	u.reqs = append(u.reqs, b)
	u.mu.Unlock()
	return b
}

// checkAlive fails if the context the layer gave next for the last call has
// ended: the caller still reads the response.
func (u *upstream) checkAlive(t *testing.T, when string) {
	t.Helper()
	if c := u.lastCall(); c != nil && c.ctx.Err() != nil {
		t.Errorf("the context the layer gave next ended %s (%v); want it alive until the body is done", when, context.Cause(c.ctx))
	}
}

// checkReleased fails if the layer derived a context of its own for the last
// call (one with a Done channel of its own) and it has not ended: the caller
// is done with the response, so what the layer holds for it must be released.
func (u *upstream) checkReleased(t *testing.T, when string) {
	t.Helper()
	c := u.lastCall()
	if c == nil {
		return
	}
	if parent := callerContext(c.ctx); parent != nil && c.ctx.Done() != parent.Done() && c.ctx.Err() == nil {
		t.Errorf("the context the layer gave next is still alive %s; want it canceled, its timer released", when)
	}
}

// checkClosed fails for every request or response body that was not closed.
func (u *upstream) checkClosed(t *testing.T) {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	for i, b := range u.reqs {
		if !b.isClosed() {
			t.Errorf("request body %d of %d was not closed", i+1, len(u.reqs))
		}
	}
	for i, b := range u.resps {
		if closed, _ := b.state(); !closed {
			t.Errorf("response body %d of %d that next returned was not closed", i+1, len(u.resps))
		}
	}
}

// checkDrained fails for every response body that was not read to EOF
// before it was closed.
func (u *upstream) checkDrained(t *testing.T) {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	for i, b := range u.resps {
		if closed, drained := b.state(); !closed || !drained {
			t.Errorf("response body %d of %d: closed %v, drained %v before Close; want both (a discarded body is drained so its connection is reused)", i+1, len(u.resps), closed, drained)
		}
	}
}

// callerKey marks the contexts the suite makes for its requests, so that
// checkReleased can tell a context the layer derived from a value-only copy.
type callerKey struct{}

// callerContext returns a context for a caller's request, with a deadline d
// away, marked as the caller's.
func newCallerContext(d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	return context.WithValue(ctx, callerKey{}, ctx), cancel
}

// callerContext returns the caller's context ctx descends from, if the suite
// made it. Value lookups pass through every layer's context.
func callerContext(ctx context.Context) context.Context {
	c, _ := ctx.Value(callerKey{}).(context.Context)
	return c
}

// respBody is a response body of the upstream. Like net/http's, its reads
// fail once the context of its request has ended.
type respBody struct {
	ctx context.Context

	mu      sync.Mutex
	r       *strings.Reader
	closed  bool
	drained bool // every byte read when closed
}

func (b *respBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errors.New("contracttest: read on a closed response body")
	}
	if b.ctx.Err() != nil {
		return 0, fmt.Errorf("contracttest: response body read after its request's context ended: %w", context.Cause(b.ctx))
	}
	return b.r.Read(p)
}

func (b *respBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		// Drained: every byte was read before Close (io.EOF itself need not
		// have been seen: a reader may stop at the length).
		b.closed, b.drained = true, b.r.Len() == 0
	}
	return nil
}

func (b *respBody) state() (closed, drained bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed, b.drained
}

// reqBody is a request body of the caller.
type reqBody struct {
	mu     sync.Mutex
	r      *strings.Reader
	closed bool
}

func (b *reqBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errors.New("contracttest: read on a closed request body")
	}
	return b.r.Read(p)
}

func (b *reqBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

func (b *reqBody) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// snapshot is what the caller's request was before RoundTrip.
type snapshot struct {
	method        string
	url           *url.URL
	urlValue      url.URL
	header        http.Header
	body          io.ReadCloser
	hasGetBody    bool
	ctx           context.Context
	contentLength int64
	host          string
}

func takeSnapshot(r *http.Request) snapshot {
	return snapshot{
		method:        r.Method,
		url:           r.URL,
		urlValue:      *r.URL,
		header:        r.Header.Clone(),
		body:          r.Body,
		hasGetBody:    r.GetBody != nil,
		ctx:           r.Context(),
		contentLength: r.ContentLength,
		host:          r.Host,
	}
}

// check fails for every field of r that differs from the snapshot.
func (s snapshot) check(t *testing.T, r *http.Request) {
	t.Helper()
	switch {
	case r.Method != s.method:
		t.Errorf("caller's request: method %q; want %q", r.Method, s.method)
	case r.URL != s.url || *r.URL != s.urlValue:
		t.Errorf("caller's request: URL changed to %v; want %v", r.URL, &s.urlValue)
	case !reflect.DeepEqual(r.Header, s.header):
		t.Errorf("caller's request: header %v; want %v", r.Header, s.header)
	case r.Body != s.body:
		t.Errorf("caller's request: body replaced by %T", r.Body)
	case r.Context() != s.ctx:
		t.Error("caller's request: context replaced")
	case r.ContentLength != s.contentLength:
		t.Errorf("caller's request: ContentLength %d; want %d", r.ContentLength, s.contentLength)
	case r.Host != s.host:
		t.Errorf("caller's request: Host %q; want %q", r.Host, s.host)
	case (r.GetBody != nil) != s.hasGetBody:
		t.Errorf("caller's request: GetBody set %v; want %v", r.GetBody != nil, s.hasGetBody)
	case r.GetBody != nil:
		// Still the caller's own: it hands out the suite's bodies.
		b, err := r.GetBody()
		if _, ok := b.(*reqBody); err != nil || !ok {
			t.Errorf("caller's request: GetBody replaced (it gave %T, %v)", b, err)
		}
		if b != nil {
			b.Close()
		}
	}
}
