// Package contracttest checks that an http.RoundTripper middleware keeps the
// contract every layer of this module keeps (DESIGN.md, "The contract every
// middleware keeps"). Each concern package's tests run it once for every
// Transport the package exports, with a constructor for it:
//
//	func TestContract(t *testing.T) {
//		contracttest.Run(t, requestid.Middleware(),
//			contracttest.NeverRefuses("requestid sends every request"),
//			contracttest.NeverWaits("requestid waits for nothing"),
//			contracttest.NeverDiscards("requestid hands on every response"),
//		)
//	}
//
// The suite is the layer's next RoundTripper: a fake upstream that behaves as
// net/http's Transport does (it reads and closes the request body, fails when
// the request context has ended, and gives response bodies whose reads fail
// once that context ends), answers as each scenario needs (a response, an
// error, a response and an error, neither, a 101), and records what the layer
// sent and whether every body was read and closed.
//
// What is checked:
//   - the caller's *http.Request is untouched (method, URL, header, body,
//     GetBody, context, ContentLength), and next gets its method, URL,
//     headers, body and a context carrying its values;
//   - every request body is closed, on every path;
//   - RoundTrip returns a response or an error, never both, never neither,
//     never a nil resp.Body, also when next breaks that rule, and the error
//     for a next returning (nil, nil) comes from internal/body.Checked;
//   - responses the layer discards are drained to EOF and closed;
//   - the response body can be read slowly after RoundTrip returned (the
//     context the layer gave next is not canceled while the caller reads),
//     and what the layer holds for the request is released on Close or on
//     EOF: a context it derived is done then, and the next request through
//     the same layer goes through (a concurrency slot came back);
//   - a canceled context ends RoundTrip at once with an error matching
//     context.Canceled, before the call, during next and, for a layer that
//     waits, during its wait; a deadline that passes during next ends it by
//     the deadline with an error matching context.DeadlineExceeded; a wait
//     that cannot end before the deadline is not started;
//   - CloseIdleConnections is forwarded to next (and a next without the
//     method is no panic), and never called by the layer itself;
//   - the body of a 101 Switching Protocols response keeps io.Writer;
//   - concurrent calls through one layer (run the tests with -race);
//   - a few calls over a real socket (httptest.Server, http.Transport).
//
// Every scenario but the real socket runs in its own testing/synctest bubble,
// with a layer built for it inside the bubble: waits of the layer (backoff,
// queues, timers) take no real time, and "at once" means that no time passed
// on the bubble's clock. The suite never sleeps to wait for time.
package contracttest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outboundhttp/outbound/internal/body"
)

// URL is the URL of every request the suite sends through a fake upstream.
// A constructor that primes its layer (trips a breaker, say) sends to it, so
// per-upstream state is the one the suite's requests meet.
const URL = "http://contract.test/path?q=1"

// Deadline is how far away, on the bubble's clock, the deadline of every
// request the suite sends lies (except in the scenario of a wait that cannot
// end in time, whose deadline is one second away).
const Deadline = time.Hour

// An Option declares what the layer under test does beyond passing a request
// on: whether it refuses requests, waits before sending them, or discards
// responses. Run requires each of the three to be declared, one way or the
// other, so a package that skips a check says why.
type Option func(*config)

type config struct {
	refuses, waits, discards       func(next http.RoundTripper) http.RoundTripper
	noRefuse, noWait, noDiscard    string
	refuseSet, waitSet, discardSet bool
}

// Refuses gives a constructor of the layer set up so that it refuses the
// suite's request without sending it: RoundTrip must return an error at once,
// without calling next, and close the request body. The constructor may send
// requests of its own through next first (to trip a breaker, for example):
// calls made before it returns are not counted.
func Refuses(newRT func(next http.RoundTripper) http.RoundTripper) Option {
	return func(c *config) { c.refuses, c.refuseSet = newRT, true }
}

// NeverRefuses declares that the layer has no refusal of its own to test, and
// why; the refusal scenario is skipped with that reason.
func NeverRefuses(why string) Option {
	return func(c *config) { c.noRefuse, c.refuseSet = why, true }
}

// Waits gives a constructor of the layer set up so that the suite's request
// waits inside the layer for longer than a second and much less than
// Deadline — a minute, say — a wait whose length the layer knows before it
// starts (a backoff, a token, a pause the server asked for). The suite
// cancels the request during that wait, and sends another whose deadline is
// one second away, which the layer must not wait for: DESIGN.md's "a wait
// that cannot finish in time is skipped". (A wait for a concurrency slot,
// which may end at any moment, is not such a wait.) The constructor may wrap
// next, for example to answer the first attempt itself, and may send
// requests of its own through the layer first.
func Waits(newRT func(next http.RoundTripper) http.RoundTripper) Option {
	return func(c *config) { c.waits, c.waitSet = newRT, true }
}

// NeverWaits declares that the layer does not wait before sending a request,
// and why; the wait scenarios are skipped with that reason.
func NeverWaits(why string) Option {
	return func(c *config) { c.noWait, c.waitSet = why, true }
}

// Discards gives a constructor of the layer set up so that it discards at
// least one response of next and does not return it: it retries it, or drops
// it for an error. In that scenario next answers the first request with 503
// Service Unavailable and "Retry-After: 0", and every later one with 200 OK.
// Every discarded body must be drained to EOF and closed.
func Discards(newRT func(next http.RoundTripper) http.RoundTripper) Option {
	return func(c *config) { c.discards, c.discardSet = newRT, true }
}

// NeverDiscards declares that the layer hands on every response it gets, and
// why; the discard scenario is skipped with that reason.
func NeverDiscards(why string) Option {
	return func(c *config) { c.noDiscard, c.discardSet = why, true }
}

// Run checks the contract on the layer newRT builds around a next
// RoundTripper, in subtests named after the scenarios. newRT is called once
// per scenario, inside the scenario's synctest bubble (except for the real
// socket); a package's Middleware function fits it. Timeouts the layer is
// built with must be longer than 100 ms: the suite reads bodies slowly.
func Run(t *testing.T, newRT func(next http.RoundTripper) http.RoundTripper, opts ...Option) {
	t.Helper()
	var c config
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	switch {
	case !c.refuseSet:
		t.Fatal("contracttest.Run: declare Refuses or NeverRefuses")
	case !c.waitSet:
		t.Fatal("contracttest.Run: declare Waits or NeverWaits")
	case !c.discardSet:
		t.Fatal("contracttest.Run: declare Discards or NeverDiscards")
	}

	bubble(t, "Success", newRT, testSuccess)
	bubble(t, "ReleasedOnEOF", newRT, testReleasedOnEOF)
	bubble(t, "NextError", newRT, testNextError)
	bubble(t, "NextNilResponseNilError", newRT, testNextNilNil)
	bubble(t, "NextResponseAndError", newRT, testNextResponseAndError)
	bubble(t, "NextNilBody", newRT, testNextNilBody)
	bubble(t, "CanceledBefore", newRT, testCanceledBefore)
	bubble(t, "CanceledInNext", newRT, testCanceledInNext)
	bubble(t, "DeadlineInNext", newRT, testDeadlineInNext)
	bubble(t, "SwitchingProtocols", newRT, testSwitchingProtocols)
	bubble(t, "Concurrent", newRT, testConcurrent)
	bubble(t, "CloseIdleConnections", newRT, testCloseIdle)
	optional(t, "Refused", c.refuses, c.noRefuse, testRefused)
	optional(t, "CanceledWhileWaiting", c.waits, c.noWait, testCanceledWhileWaiting)
	optional(t, "WaitPastDeadline", c.waits, c.noWait, testWaitPastDeadline)
	optional(t, "Discarded", c.discards, c.noDiscard, testDiscarded)
	t.Run("RealServer", func(t *testing.T) { testRealServer(t, newRT) })
}

// bubble runs f in a synctest bubble, with an env whose layer newRT built
// inside it, and checks what every scenario must leave behind.
func bubble(t *testing.T, name string, newRT func(http.RoundTripper) http.RoundTripper, f func(*testing.T, *env)) {
	t.Run(name, func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newEnv(t, newRT)
			defer e.cancel()
			f(t, e)
			e.finish()
		})
	})
}

func optional(t *testing.T, name string, newRT func(http.RoundTripper) http.RoundTripper, why string, f func(*testing.T, *env)) {
	if newRT == nil {
		t.Run(name, func(t *testing.T) { t.Skip(why) })
		return
	}
	bubble(t, name, newRT, f)
}

// Text of the fake upstream's answers and of the caller's request body.
const (
	payload  = "request payload"
	okText   = "hello from the contract upstream"
	pongText = "pong"
)

var errBoom = errors.New("contracttest: next failed")

// env is one scenario: a layer around a fake upstream, the caller's request
// and what must hold of both at the end.
type env struct {
	t      *testing.T
	up     *upstream
	newRT  func(http.RoundTripper) http.RoundTripper
	rt     http.RoundTripper
	ctx    context.Context
	cancel context.CancelFunc
	req    *http.Request
	snap   snapshot
	idle   int // CloseIdleConnections calls the scenario makes
}

func newEnv(t *testing.T, newRT func(http.RoundTripper) http.RoundTripper) *env {
	up := newUpstream()
	e := &env{t: t, up: up, newRT: newRT}
	e.rt = newRT(up)
	e.ctx, e.cancel = newCallerContext(Deadline)
	e.req = up.request(e.ctx, http.MethodPut)
	e.snap = takeSnapshot(e.req)
	return e
}

// result is what RoundTrip returned.
type result struct {
	resp *http.Response
	err  error
}

// roundTrip sends req through the layer and checks the shape of the outcome.
func (e *env) roundTrip(req *http.Request) (*http.Response, error) {
	e.t.Helper()
	resp, err := e.rt.RoundTrip(req)
	e.checkShape(resp, err)
	return resp, err
}

// start sends req through the layer in a goroutine of the bubble.
func (e *env) start(req *http.Request) <-chan result {
	ch := make(chan result, 1)
	go func() {
		resp, err := e.rt.RoundTrip(req)
		ch <- result{resp, err}
	}()
	return ch
}

// await receives the outcome of start, failing if it takes longer than
// within on the bubble's clock.
func (e *env) await(ch <-chan result, within time.Duration) (*http.Response, error) {
	e.t.Helper()
	select {
	case r := <-ch:
		e.checkShape(r.resp, r.err)
		return r.resp, r.err
	case <-time.After(within):
		e.t.Fatalf("RoundTrip did not return within %v", within)
		return nil, nil
	}
}

func (e *env) checkShape(resp *http.Response, err error) {
	e.t.Helper()
	switch {
	case resp != nil && err != nil:
		e.t.Errorf("RoundTrip returned a response (%d) and an error (%v); want one of them", resp.StatusCode, err)
		if resp.Body != nil {
			resp.Body.Close()
		}
	case resp == nil && err == nil:
		e.t.Error("RoundTrip returned a nil response and a nil error")
	case resp != nil && resp.Body == nil:
		e.t.Errorf("RoundTrip returned a response (%d) with a nil Body; want http.NoBody at least", resp.StatusCode)
	}
}

// wantOK checks a successful outcome and reads the body slowly: a few bytes,
// 10 ms apart on the bubble's clock, checking in between that the context the
// layer gave next is still alive. It does not close the body.
func (e *env) wantOK(resp *http.Response, err error, want string) {
	e.t.Helper()
	if err != nil || resp == nil {
		e.t.Fatalf("RoundTrip: got (%v, %v); want a response", resp, err)
	}
	if resp.StatusCode != http.StatusOK {
		e.t.Errorf("status: got %d; want 200", resp.StatusCode)
	}
	if resp.Body == nil {
		return
	}
	var got []byte
	buf := make([]byte, 5)
	for {
		if len(want) > 0 {
			// An empty body may be released at once.
			e.up.checkAlive(e.t, "while the caller reads the body")
		}
		time.Sleep(10 * time.Millisecond)
		n, err := resp.Body.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			e.t.Fatalf("reading the body slowly: %v after %q", err, got)
		}
		if len(got) > 10*len(want) {
			e.t.Fatalf("body longer than %q", want)
		}
	}
	if string(got) != want {
		e.t.Errorf("body: got %q; want %q", got, want)
	}
}

// followUp sends one more request through the same layer, which must go
// through: whatever the layer held for the earlier one is released.
func (e *env) followUp(why string) {
	e.t.Helper()
	e.up.setAnswer(e.up.ok)
	ctx, cancel := newCallerContext(Deadline)
	defer cancel()
	req := e.up.request(ctx, http.MethodPut)
	resp, err := e.roundTrip(req)
	if err != nil {
		e.t.Errorf("a request after %s: got %v; want it to go through (was something of the earlier request not released?)", why, err)
		return
	}
	if b, err := io.ReadAll(resp.Body); err != nil || string(b) != okText {
		e.t.Errorf("a request after %s: body %q, %v; want %q", why, b, err, okText)
	}
	resp.Body.Close()
}

// unused closes the body of the env's request, for a scenario that sends
// other requests instead.
func (e *env) unused() { e.req.Body.Close() }

// finish checks what must hold at the end of every scenario: the caller's
// request untouched, every request body closed, every response body of next
// closed.
func (e *env) finish() {
	e.t.Helper()
	e.snap.check(e.t, e.req)
	e.up.checkClosed(e.t)
	if got := e.up.idleCloses(); got != e.idle {
		// DESIGN.md: never calls CloseIdleConnections on a shared transport.
		e.t.Errorf("CloseIdleConnections reached next %d times; want %d (a layer never closes the idle connections of a shared transport)", got, e.idle)
	}
}

func testSuccess(t *testing.T, e *env) {
	resp, err := e.roundTrip(e.req)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	calls := e.up.callList()
	if len(calls) != 1 {
		t.Fatalf("next called %d times; want 1", len(calls))
	}
	c := calls[0]
	if callerContext(c.ctx) == nil {
		t.Error("the context next got does not descend from the caller's (its values are lost)")
	}
	if c.method != http.MethodPut || c.url != URL || c.header.Get("X-Contract") != "caller" || c.reqBody != payload {
		t.Errorf("next got %s %s, X-Contract %q, body %q; want PUT %s, \"caller\", %q",
			c.method, c.url, c.header.Get("X-Contract"), c.reqBody, URL, payload)
	}
	e.wantOK(resp, err, okText)
	resp.Body.Close()
	e.up.checkReleased(t, "after Close")
	e.followUp("the first was closed")
}

func testReleasedOnEOF(t *testing.T, e *env) {
	resp, err := e.roundTrip(e.req)
	e.wantOK(resp, err, okText)
	// Read to EOF and not closed: the caller is done all the same.
	e.up.checkReleased(t, "once the body was read to EOF")
	e.followUp("the first was read to EOF (not closed)")
	resp.Body.Close()
}

func testNextError(t *testing.T, e *env) {
	e.up.setAnswer(func(*http.Request) (*http.Response, error) { return nil, errBoom })
	_, err := e.roundTrip(e.req)
	if !errors.Is(err, errBoom) {
		t.Errorf("RoundTrip: got %v; want an error wrapping next's (%v)", err, errBoom)
	}
	e.followUp("next failed")
}

func testNextNilNil(t *testing.T, e *env) {
	e.up.setAnswer(func(*http.Request) (*http.Response, error) { return nil, nil })
	_, err := e.roundTrip(e.req)
	if !errors.Is(err, body.ErrNilResponse) {
		t.Errorf("RoundTrip: got %v; want the error of body.Checked (matching body.ErrNilResponse)", err)
	}
	e.followUp("next returned (nil, nil)")
}

func testNextResponseAndError(t *testing.T, e *env) {
	e.up.setAnswer(func(r *http.Request) (*http.Response, error) {
		return e.up.respond(r, http.StatusOK, okText), errBoom
	})
	_, err := e.roundTrip(e.req)
	if !errors.Is(err, errBoom) {
		t.Errorf("RoundTrip: got %v; want an error wrapping next's (%v)", err, errBoom)
	}
	// finish checks that the stray response's body was closed.
	e.followUp("next returned a response and an error")
}

func testNextNilBody(t *testing.T, e *env) {
	e.up.setAnswer(func(r *http.Request) (*http.Response, error) {
		return respondNoBody(r, http.StatusOK), nil
	})
	resp, err := e.roundTrip(e.req)
	e.wantOK(resp, err, "")
	if resp.Body != nil {
		resp.Body.Close()
	}
	e.up.checkReleased(t, "after Close")
	e.followUp("a response with a nil body")
}

func testCanceledBefore(t *testing.T, e *env) {
	e.cancel()
	start := time.Now()
	_, err := e.roundTrip(e.req)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("RoundTrip with a canceled context: got %v; want an error matching context.Canceled", err)
	}
	if d := time.Since(start); d > 0 {
		t.Errorf("RoundTrip with a canceled context took %v; want it to return at once", d)
	}
	e.followUp("a canceled request")
}

func testCanceledInNext(t *testing.T, e *env) {
	entered := make(chan struct{})
	var once sync.Once
	e.up.setAnswer(func(r *http.Request) (*http.Response, error) {
		once.Do(func() { close(entered) })
		<-r.Context().Done()
		return nil, r.Context().Err()
	})
	ch := e.start(e.req)
	<-entered
	start := time.Now()
	e.cancel()
	_, err := e.await(ch, time.Minute)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("RoundTrip canceled during next: got %v; want an error matching context.Canceled", err)
	}
	if d := time.Since(start); d > 0 {
		t.Errorf("RoundTrip returned %v after the cancel; want at once", d)
	}
	e.followUp("a request canceled in next")
}

func testDeadlineInNext(t *testing.T, e *env) {
	e.up.setAnswer(func(r *http.Request) (*http.Response, error) {
		<-r.Context().Done()
		return nil, context.Cause(r.Context())
	})
	start := time.Now()
	_, err := e.await(e.start(e.req), Deadline+time.Minute)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("RoundTrip whose deadline passed in next: got %v; want an error matching context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > Deadline {
		t.Errorf("RoundTrip returned %v after it started; want no later than its deadline (%v)", d, Deadline)
	}
}

// upgradeBody is the body of a 101 response: the connection, readable and
// writable.
type upgradeBody struct {
	*respBody
	mu      sync.Mutex
	written strings.Builder
}

func (b *upgradeBody) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.written.Write(p)
}

func testSwitchingProtocols(t *testing.T, e *env) {
	var ub *upgradeBody
	e.up.setAnswer(func(r *http.Request) (*http.Response, error) {
		resp := e.up.respond(r, http.StatusSwitchingProtocols, pongText)
		ub = &upgradeBody{respBody: resp.Body.(*respBody)}
		resp.Body = ub
		resp.Header.Set("Connection", "Upgrade")
		resp.Header.Set("Upgrade", "contract")
		return resp, nil
	})
	e.unused()
	req := e.up.request(e.ctx, http.MethodGet)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "contract")
	resp, err := e.roundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status: got %d; want 101", resp.StatusCode)
	}
	w, ok := resp.Body.(io.Writer)
	if !ok {
		t.Fatalf("the body of a 101 response is a %T, not an io.Writer", resp.Body)
	}
	if _, err := io.WriteString(w, "ping"); err != nil {
		t.Fatalf("writing to the 101 body: %v", err)
	}
	ub.mu.Lock()
	got := ub.written.String()
	ub.mu.Unlock()
	if got != "ping" {
		t.Errorf("the connection got %q; want %q", got, "ping")
	}
	if b, err := io.ReadAll(resp.Body); err != nil || string(b) != pongText {
		t.Errorf("reading the 101 body: %q, %v; want %q", b, err, pongText)
	}
}

func testConcurrent(t *testing.T, e *env) {
	e.unused()
	const n = 8
	var wg sync.WaitGroup
	for range n {
		req := e.up.request(e.ctx, http.MethodPut)
		wg.Go(func() {
			resp, err := e.rt.RoundTrip(req)
			e.checkShape(resp, err)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	e.followUp("concurrent requests")
}

func testCloseIdle(t *testing.T, e *env) {
	ci, ok := e.rt.(interface{ CloseIdleConnections() })
	if !ok {
		t.Fatalf("%T has no CloseIdleConnections method to forward", e.rt)
	}
	ci.CloseIdleConnections()
	e.idle = 1 // finish checks it reached next once
	// A next without the method: nothing to forward, and no panic.
	if ci, ok := e.newRT(RoundTripFunc(e.up.RoundTrip)).(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}

	e.unused()
}

func testRefused(t *testing.T, e *env) {
	before := len(e.up.callList())
	start := time.Now()
	resp, err := e.roundTrip(e.req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("RoundTrip: got a response (%d); want a refusal", resp.StatusCode)
	}
	if n := len(e.up.callList()) - before; n != 0 {
		t.Errorf("a refused request reached next %d times; want 0", n)
	}
	if d := time.Since(start); d > 0 {
		t.Errorf("the refusal took %v; want it at once", d)
	}
}

func testCanceledWhileWaiting(t *testing.T, e *env) {
	before := len(e.up.callList())
	ch := e.start(e.req)
	synctest.Wait() // the layer is waiting: every goroutine of the bubble is blocked
	select {
	case r := <-ch:
		e.checkShape(r.resp, r.err)
		if r.resp != nil {
			r.resp.Body.Close()
		}
		t.Fatalf("RoundTrip returned (%v) without waiting; Waits must give a layer that waits", r.err)
	default:
	}
	start := time.Now()
	e.cancel()
	resp, err := e.await(ch, time.Minute)
	if resp != nil {
		resp.Body.Close()
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("RoundTrip canceled while waiting: got (%v, %v); want an error matching context.Canceled", resp, err)
	}
	if d := time.Since(start); d > 0 {
		t.Errorf("RoundTrip returned %v after the cancel; want at once", d)
	}
	if n := len(e.up.callList()) - before; n != 0 {
		t.Errorf("next called %d times after a cancel during the wait; want 0", n)
	}
}

func testWaitPastDeadline(t *testing.T, e *env) {
	const deadline = time.Second
	ctx, cancel := newCallerContext(deadline)
	defer cancel()
	req := e.up.request(ctx, http.MethodPut)
	start := time.Now()
	resp, err := e.await(e.start(req), time.Minute)
	if d := time.Since(start); d >= deadline {
		t.Errorf("RoundTrip returned after %v (%v); want a wait that cannot end before the deadline (%v) not started", d, err, deadline)
	}
	if resp != nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	e.unused()
}

func testDiscarded(t *testing.T, e *env) {
	var n int
	e.up.setAnswer(func(r *http.Request) (*http.Response, error) {
		n++ // calls are sequential in this scenario
		if n == 1 {
			resp := e.up.respond(r, http.StatusServiceUnavailable, "retry me")
			resp.Header.Set("Retry-After", "0")
			return resp, nil
		}
		return e.up.ok(r)
	})
	resp, err := e.roundTrip(e.req)
	calls := len(e.up.callList())
	if err == nil {
		e.wantOK(resp, err, okText)
		resp.Body.Close()
		if calls < 2 {
			t.Errorf("next called %d times and its response returned; want one discarded", calls)
		}
	} else if calls < 1 {
		t.Errorf("next never called; want a response of it discarded")
	}
	e.up.checkDrained(t)
}

// testRealServer sends a few requests through the layer over a real socket.
func testRealServer(t *testing.T, newRT func(http.RoundTripper) http.RoundTripper) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		io.WriteString(w, "echo: "+string(b))
	}))
	defer srv.Close()
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	rt := newRT(base)
	client := &http.Client{Transport: rt}
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, srv.URL+"/x", strings.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			cancel()
			t.Fatalf("request %d: %v", i, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		if err != nil || resp.StatusCode != http.StatusOK || string(b) != "echo: "+payload {
			t.Errorf("request %d: %d %q, %v; want 200 %q", i, resp.StatusCode, b, err, "echo: "+payload)
		}
	}
	if ci, ok := rt.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}
