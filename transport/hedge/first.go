package hedge

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outboundhttp/outbound/internal/callctx"
)

// The fast path, an armed call whose first attempt answers before the
// delay, costs one allocation: the call itself, which holds the first
// attempt's request copy, its context (firstCtx) and its body wrapper
// (firstBody); the timer that would send the hedge comes from a pool
// (hedgeTimer). What a hedge needs is allocated only when one is sent.

// firstCtx is the context of a call's first attempt: the caller's context,
// made cancelable (context.WithCancel) only when something needs it to be —
// a layer below that waits on Done (net/http's Transport does), a hedge that
// won and cancels the first attempt, a child context — so that a first
// attempt nobody waits on costs nothing. Deadline and values are the
// caller's; once made, everything is the cancelable context's, so
// context.Cause and child contexts see it as a standard one. When the
// caller's context is the call's own (callctx.Call, from a budget layer
// above), the cancelable context is the call's sibling instead of its child,
// so that net/http's Transport below registers with one cancelable context
// rather than a chain of two; the call's own values are then answered from
// the call.
type firstCtx struct {
	c    *call       // whose req has the caller's context; the SaturationSink of the layers below
	made atomic.Bool // ctx and cancel are set
	done bool        // released: a context made from now on is canceled at once
	// ctx is the call's sibling (callctx.Call.Sibling), not a child of the
	// caller's context: it answers the context package's own key, the
	// caller's context every other. Written before made is stored.
	sibling bool
	mu      sync.Mutex
	ctx     context.Context
	cancel  context.CancelFunc
	hook    atomic.Pointer[wireHook]
}

// parent returns the caller's context.
func (f *firstCtx) parent() context.Context { return f.c.req.Context() }

var _ context.Context = (*firstCtx)(nil)

// get returns the cancelable context, making it the first time.
func (f *firstCtx) get() context.Context {
	if f.made.Load() {
		return f.ctx
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.made.Load() {
		parent := f.parent()
		ok := false
		if call, isCall := parent.(*callctx.Call); isCall {
			// The call's deadline in one cancelable context instead of two
			// (callctx.Call.Sibling); Value answers the call's values.
			f.ctx, f.cancel, ok = call.Sibling()
			f.sibling = ok
		}
		if !ok {
			f.ctx, f.cancel = context.WithCancel(parent)
		}
		if f.done {
			f.cancel()
		}
		f.made.Store(true)
	}
	return f.ctx
}

// Deadline returns the caller's deadline.
func (f *firstCtx) Deadline() (time.Time, bool) { return f.parent().Deadline() }

// Done returns the channel closed when the caller's context ends or the
// attempt is canceled.
func (f *firstCtx) Done() <-chan struct{} { return f.get().Done() }

// Err returns the context's error: the caller's while the cancelable
// context is not made (nothing can have canceled it).
func (f *firstCtx) Err() error {
	if f.made.Load() {
		return f.ctx.Err()
	}
	return f.parent().Err()
}

// Value returns the caller's values (and, once made, the cancelable
// context's own, which context.Cause looks up), for httptrace's key the
// call's wireHook, and for callctx.SaturationSinkKey the call.
func (f *firstCtx) Value(key any) any {
	if key == callctx.SaturationSinkKey {
		return callctx.SaturationSink(f.c) // (saturation.go)
	}
	if h := f.hook.Load(); h != nil && isTraceKey(key) {
		return f.trace(h, key)
	}
	if f.made.Load() && (!f.sibling || callctx.IsContextKey(key)) {
		return f.ctx.Value(key)
	}
	return f.parent().Value(key)
}

func (f *firstCtx) String() string { return "hedge: first attempt context" }

// AttemptStart returns when the first attempt began, for the layers below
// to share the reading (callctx.Now).
func (f *firstCtx) AttemptStart() (time.Time, bool) { return f.c.first.start, true }

// abort cancels the attempt (another attempt won, or it is thrown away):
// the layers below see context.Canceled.
func (f *firstCtx) abort() {
	f.get()
	f.cancel()
}

// release ends the context of an attempt whose response was handed out,
// when its body is closed or read to the end: canceled if it was made (so
// nothing stays registered with the caller's context), and canceled at once
// if something makes it later.
func (f *firstCtx) release() {
	f.mu.Lock()
	f.done = true
	made := f.made.Load()
	f.mu.Unlock()
	if made {
		f.cancel()
	}
}

// firstBody wraps the body of the response of a first attempt that is handed
// to the caller, to release its context on Close or at the end of the body,
// never while the caller reads (internal/body.OnDone does the same for
// hedges; this one lives in the call, so it costs no allocation).
type firstBody struct {
	rc       io.ReadCloser
	released atomic.Bool
	c        *call
}

func (b *firstBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil {
		b.release()
	}
	return n, err
}

func (b *firstBody) Close() error {
	err := b.rc.Close()
	b.release()
	return err
}

func (b *firstBody) release() {
	if b.released.CompareAndSwap(false, true) {
		b.c.fctx.release()
	}
}

// firstWriterBody is firstBody for a 101 Switching Protocols body, which
// keeps io.Writer.
type firstWriterBody struct{ firstBody }

func (b *firstWriterBody) Write(p []byte) (int, error) { return b.rc.(io.Writer).Write(p) }

// handOut wraps the body of resp, the first attempt's response, which the
// caller gets, so that its context is released when the caller is done.
func (c *call) handOut(resp *http.Response) {
	rc := resp.Body
	if rc == nil || rc == http.NoBody {
		resp.Body = http.NoBody
		c.fctx.release()
		return
	}
	c.fb.rc, c.fb.c = rc, c
	if _, ok := rc.(io.ReadWriteCloser); ok {
		resp.Body = &c.fb
		return
	}
	resp.Body = &c.fb.firstBody
}

// hedgeTimer sends the hedges of call c when it fires. Timers of calls that
// sent no hedge go back to the Transport's pool and serve the next call
// (Reset instead of time.AfterFunc's two allocations). A timer made inside a
// testing/synctest bubble belongs to it (stopping or resetting it from
// outside is a fatal error), so such timers are never pooled, and the pool
// is not used inside a bubble.
type hedgeTimer struct {
	t      *time.Timer
	c      atomic.Pointer[call]
	pooled bool
}

func (h *hedgeTimer) fire() {
	if c := h.c.Load(); c != nil {
		c.hedge()
	}
}

// arm returns a timer that calls c.hedge after d.
func (t *Transport) arm(c *call, d time.Duration, pool bool) *hedgeTimer {
	if pool {
		if h, _ := t.timers.Get().(*hedgeTimer); h != nil {
			h.c.Store(c)
			h.t.Reset(d)
			return h
		}
	}
	h := &hedgeTimer{pooled: pool}
	h.c.Store(c)
	h.t = time.AfterFunc(d, h.fire)
	return h
}

// disarm stops h and gives it back to the pool when it did not fire and
// sent no hedge, so no goroutine can still be using it.
func (t *Transport) disarm(h *hedgeTimer, hedged bool) {
	if h.t.Stop() && h.pooled && !hedged {
		h.c.Store(nil)
		t.timers.Put(h)
	}
}

// The delay counts from when the first attempt leaves the client, not from
// when it entered the layers below: an attempt that waits below for a
// Retry-After pause or a concurrency slot (transport/ratelimit) is not slow,
// and a hedge sent then would only wait beside it, spending the retry
// budget (the 429-burst drill) or lengthening the queue (the overload drill).
// The first attempt's context carries an httptrace.ClientTrace whose GetConn
// net/http's Transport (and x/net's HTTP/2 Transport) calls when the request
// is about to be sent. Once an upstream's attempts are seen to report it
// (state.wire), its calls arm the hedge timer at GetConn instead of at once,
// and the latency they record starts there too. Below a RoundTripper that
// never reports GetConn (a test double, a custom transport), nothing changes:
// the delay counts from the start of the call.

// traceProbe answers traceSentinel for httptrace's context key and nil for
// any other, which is how firstCtx.Value recognizes that key (unexported in
// net/http/httptrace) using nothing but its documented behaviour.
var (
	traceSentinel = &httptrace.ClientTrace{}
	traceProbe    = httptrace.WithClientTrace(context.Background(), traceSentinel)
)

func isTraceKey(key any) bool { return traceProbe.Value(key) == any(traceSentinel) }

// wireHook is the ClientTrace of one call's first attempt. Hooks are pooled
// by the Transport (the trace and its bound GetConn would cost two
// allocations per call); one goes back to the pool when its attempt's
// RoundTrip has returned, after which net/http calls GetConn no more.
type wireHook struct {
	trace    httptrace.ClientTrace
	c        atomic.Pointer[call]
	composed *httptrace.ClientTrace // with the caller's own trace, when it has one

	connMu sync.Mutex
	conn   net.Conn // the first attempt's connection (GotConn), for answerWaiting
}

func (h *wireHook) gotConn(info httptrace.GotConnInfo) {
	h.connMu.Lock()
	h.conn = info.Conn
	h.connMu.Unlock()
}

func (h *wireHook) getConn(string) {
	if c := h.c.Load(); c != nil {
		c.onWire(time.Now())
	}
}

// gotFirstByte: the first attempt's answer has arrived, and is on its way
// up through the layers below; a hedge due now would come too late to win,
// and could reach an upstream that just asked for a pause (the 429-burst
// drill's impolite requests, under a loaded scheduler that is slower than
// the delay's 1 ms floor to hand a response up).
func (h *wireHook) gotFirstByte() {
	if c := h.c.Load(); c != nil {
		c.mu.Lock()
		c.answered = true
		c.mu.Unlock()
	}
}

// hook returns a wireHook for c's first attempt.
func (t *Transport) hook(c *call) *wireHook {
	h, _ := t.hooks.Get().(*wireHook)
	if h == nil {
		h = &wireHook{}
		h.trace.GetConn = h.getConn
		h.trace.GotFirstResponseByte = h.gotFirstByte
		h.trace.GotConn = h.gotConn
	}
	h.composed = nil
	h.connMu.Lock()
	h.conn = nil // a layer below that reported GotConn late cannot leave one behind
	h.connMu.Unlock()
	h.c.Store(c)
	return h
}

// unhook gives h back once c's first attempt has returned.
func (t *Transport) unhook(c *call, h *wireHook) {
	c.fctx.hook.Store(nil)
	h.c.Store(nil)
	h.connMu.Lock()
	h.conn = nil
	h.connMu.Unlock()
	t.hooks.Put(h)
}

// answerWaiting reports whether the first attempt's answer has reached the
// client's socket without the client having read it yet. The runtime runs
// due timers each time it schedules, but looks for sockets that became
// readable only when a processor runs out of work, or every 10 ms from
// sysmon: in a busy process the hedge timer fires while the answer waits in
// the socket, and a hedge sent then reaches an upstream that has already
// answered the same call, with a Retry-After it has not been read yet (the
// 429-burst drill's impolite requests, one clean-clone make test in three
// with hedging on). The kernel knows what the runtime has not looked at, so
// the hedge asks it (unread, per platform). Only the first attempt's own
// HTTP/1 connection is asked: bytes on a shared HTTP/2 connection may belong
// to any stream.
func (c *call) answerWaiting() bool {
	h := c.fctx.hook.Load()
	if h == nil {
		return false
	}
	h.connMu.Lock()
	conn := h.conn
	h.connMu.Unlock()
	if conn == nil || h.c.Load() != c {
		return false
	}
	return unread(conn)
}

// trace returns the ClientTrace the first attempt's context answers with
// for httptrace's key: the hook's, composed with the caller's own trace when
// there is one (made once per call; a caller's trace is rare). The caller's
// DNS and connect hooks keep reaching it through its own context.
func (f *firstCtx) trace(h *wireHook, key any) any {
	outer, _ := f.parent().Value(key).(*httptrace.ClientTrace)
	if outer == nil {
		return &h.trace
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if h.composed == nil {
		ours := new(httptrace.ClientTrace)
		*ours = h.trace
		httptrace.WithClientTrace(f.parent(), ours) // composes ours with outer: ours first
		h.composed = ours
	}
	return h.composed
}

// onWire records that c's first attempt is leaving the client at now: the
// upstream reports GetConn from now on, the latency of the attempt starts
// here, and the hedge timer, if it was not armed yet (or has not fired),
// runs its delay from here.
func (c *call) onWire(now time.Time) {
	if !c.s.wire.Load() {
		c.s.wire.Store(true)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wired || c.decided {
		return
	}
	c.wired, c.wire = true, now.Sub(c.first.start)
	switch {
	case !c.armed:
	case c.tm == nil:
		c.tm = c.t.arm(c, c.delay, c.pool)
	case c.hs == nil && c.tm.t.Stop():
		c.tm.t.Reset(c.delay)
	}
}
