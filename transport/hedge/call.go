package hedge

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/outboundhttp/outbound/internal/body"
	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/internal/refusal"
)

// call is one hedged call: the first attempt, its hedges, and the outcome.
// Every field below mu is guarded by it. It is the one allocation of the
// fast path (an armed call answered before the delay), so it holds nothing
// that can be found elsewhere: the caller's context is req's, the key, the
// latency sketch and the own budget are the state's, the start is the first
// attempt's, and what only a hedge needs is allocated with the first hedge
// (hedging). At 568 bytes, with the 8-byte header the allocator gives an
// object over 512 bytes that has pointers, it fills the 576-byte size class
// (it was 752, in the 768-byte class; BenchmarkFastPath, docs/hedge.md).
type call struct {
	t     *Transport
	req   *http.Request // the caller's; read only
	s     *state
	delay time.Duration
	armed bool // a hedge may be sent (else the call only records its latency)
	pool  bool // the timer may come from, and go back to, the Transport's pool

	// The first attempt's request, context and body wrapper live here, so
	// that the fast path allocates the call and nothing else (first.go).
	req1 http.Request
	fctx firstCtx
	fb   firstWriterBody

	mu         sync.Mutex
	decided    bool // the outcome is known (or the caller left): nothing more is sent
	suppressed bool // the budget refused a hedge
	answered   bool // the first attempt's answer has arrived (GotFirstResponseByte): no more hedges
	wired      bool // wire is known
	inflight   int32
	wire       time.Duration // when the first attempt left the client (GetConn), from its start
	tm         *hedgeTimer   // sends the next hedge; nil until the first attempt leaves when s.wire
	first      attempt
	hs         *hedging // nil until the first hedge is sent
	winner     *attempt
	failed     *attempt           // the last retryable failure that came with a response, held open
	err        error              // the last error, a local refusal only if nothing else failed
	sat        callctx.Saturation // of the upstream the first attempt was admitted to (saturation.go)
}

// hedging is the part of a call that only hedges use, made with the first.
type hedging struct {
	list []*attempt
	done chan struct{} // closed once decided
}

// parent returns the caller's context.
func (c *call) parent() context.Context { return c.req.Context() }

// hedges returns the hedges sent so far. c.mu is held.
func (c *call) hedges() []*attempt {
	if c.hs == nil {
		return nil
	}
	return c.hs.list
}

// budget returns the budget hedges withdraw from: the retry layer's, when it
// shares one through the context, else the state's own (RoundTrip counted the
// call in it).
func (c *call) budget() callctx.Withdrawer {
	if b, ok := callctx.RetryBudget(c.parent()); ok {
		return b
	}
	return c.s.own
}

// attempt is one attempt of a call: the first (n = 0) or hedge n.
type attempt struct {
	n        int32
	finished bool
	cancel   context.CancelFunc // a hedge's; the first attempt's context is call.fctx
	start    time.Time
	resp     *http.Response // when it won, or is c.failed
}

// run sends the first attempt on the caller's goroutine, with the timer of
// the first hedge running, and returns the call's outcome.
func (c *call) run() (*http.Response, error) {
	c.fctx.c = c
	// The copy of WithContext's result does not escape: no allocation.
	c.req1 = *c.req.WithContext(&c.fctx)
	h := c.t.hook(c)
	c.fctx.hook.Store(h)
	c.mu.Lock()
	c.inflight = 1
	if c.armed && !c.s.wire.Load() {
		c.tm = c.t.arm(c, c.delay, c.pool) // else at GetConn (onWire)
	}
	c.mu.Unlock()
	resp, err := c.t.next.RoundTrip(&c.req1)
	c.t.unhook(c, h)
	resp, err = body.Checked(resp, err, "hedge")
	c.report(&c.first, resp, err)
	return c.outcome()
}

// hedge sends the next hedge, when the call still needs one and the budget
// allows it; it runs on the timer's goroutine and reports the hedge's
// outcome.
func (c *call) hedge() {
	c.mu.Lock()
	if c.decided || c.suppressed || c.answered || len(c.hedges()) >= c.t.cfg.maxHedges {
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	b, ok := c.body()
	if !ok {
		return // GetBody failed: no copy to send
	}
	waiting := c.answerWaiting() // a syscall: not under c.mu
	now := time.Now()
	c.mu.Lock()
	if waiting {
		c.answered = true
	}
	if c.decided || c.answered {
		c.mu.Unlock()
		closeBody(b)
		return
	}
	if c.sat != nil && c.sat.Saturated(now) {
		// The upstream has no room: the hedge would wait beside the first
		// attempt, or take another call's slot (saturation.go).
		c.suppressed = true
		c.mu.Unlock()
		closeBody(b)
		callctx.Emit(c.parent(), callctx.Event{Kind: callctx.KindHedgeSuppressed, Attempt: len(c.hedges()) + 1, Reason: "saturated", Key: c.s.key})
		return
	}
	if !c.budget().Withdraw(now) {
		// An empty budget stops new hedges; what is in flight goes on.
		c.suppressed = true
		c.mu.Unlock()
		closeBody(b)
		callctx.Emit(c.parent(), callctx.Event{Kind: callctx.KindHedgeSuppressed, Attempt: len(c.hedges()) + 1, Reason: "budget", Key: c.s.key})
		return
	}
	if c.hs == nil {
		c.hs = &hedging{done: make(chan struct{})}
	}
	a := &attempt{n: int32(len(c.hs.list) + 1), start: now}
	ctx, cancel := context.WithCancel(c.parent())
	ctx, a.cancel = callctx.WithAttemptType(ctx, callctx.AttemptHedge), cancel
	c.hs.list = append(c.hs.list, a)
	c.inflight++
	if len(c.hs.list) < c.t.cfg.maxHedges {
		c.tm.t.Reset(c.delay)
	}
	c.mu.Unlock()
	callctx.Emit(c.parent(), callctx.Event{Kind: callctx.KindHedge, Attempt: int(a.n), Delay: now.Sub(c.first.start), Key: c.s.key})

	hreq := c.req.WithContext(ctx)
	hreq.Body = b
	resp, err := c.t.next.RoundTrip(hreq)
	resp, err = body.Checked(resp, err, "hedge")
	c.report(a, resp, err)
}

// body returns the body of a hedge: a fresh one from GetBody, never one that
// another attempt reads (cristalhq/hedgedhttp shares one body between its
// copies), or the caller's nil or http.NoBody.
func (c *call) body() (io.ReadCloser, bool) {
	rb := c.req.Body
	if rb == nil || rb == http.NoBody {
		return rb, true
	}
	b, err := c.req.GetBody()
	if err != nil || b == nil {
		return nil, false
	}
	return b, true
}

func closeBody(b io.ReadCloser) {
	if b != nil {
		b.Close()
	}
}

// report records the outcome of attempt a and decides the call when it can:
// a winner, or no attempt left in flight. What it throws away is drained,
// closed and canceled after the lock is released.
func (c *call) report(a *attempt, resp *http.Response, err error) {
	var now time.Time
	if c.s.lat != nil {
		now = time.Now() // for the latency sample; a fixed delay needs none
	}
	var drop *attempt     // a held failure replaced or beaten
	var losers []*attempt // attempts still in flight when a winner came
	c.mu.Lock()
	c.inflight--
	a.finished = true
	hedged := c.hs != nil
	switch {
	case c.decided:
		// Too late: another attempt won, or the caller left.
		c.mu.Unlock()
		discard(resp)
		c.abort(a)
		return
	case wins(resp, err):
		a.resp = resp
		c.winner = a
		if hedged {
			// Before decide wakes the caller, who may end the logical span
			// the event belongs to (TestTelemetry lost it 1 run in 50 under
			// -race when it was emitted after the lock).
			reason := "hedge"
			if a.n == 0 {
				reason = "original"
			}
			callctx.Emit(c.parent(), callctx.Event{Kind: callctx.KindHedgeWon, Attempt: int(a.n), Reason: reason, Key: c.s.key})
		}
		c.decide()
		drop, c.failed = c.failed, nil
		losers = c.inFlight()
		c.sample(a, now)
	default:
		if resp != nil {
			a.resp = resp
			drop, c.failed = c.failed, a
		} else {
			if c.err == nil || !refusal.IsLocal(err) || refusal.IsLocal(c.err) {
				c.err = err
			}
			drop = a // nothing to hold: release its context now
		}
		if c.inflight == 0 {
			c.decide() // nothing in flight: the last failure is the outcome
		}
	}
	c.mu.Unlock()

	for _, l := range losers {
		c.abort(l) // context.Canceled: not an overload signal below
	}
	if drop != nil {
		discard(drop.resp) // drained while its context lives, so the connection is reused
		c.abort(drop)
	}
}

// abort cancels attempt a's context.
func (c *call) abort(a *attempt) {
	if a.n == 0 {
		c.fctx.abort()
		return
	}
	a.cancel()
}

// decide ends the call: nothing more is sent. c.mu is held.
func (c *call) decide() {
	c.decided = true
	if c.tm != nil {
		c.t.disarm(c.tm, c.hs != nil)
	}
	if c.hs != nil {
		close(c.hs.done)
	}
}

// inFlight returns the attempts that have not reported. c.mu is held.
func (c *call) inFlight() []*attempt {
	var l []*attempt
	if !c.first.finished {
		l = append(l, &c.first)
	}
	for _, h := range c.hedges() {
		if !h.finished {
			l = append(l, h)
		}
	}
	return l
}

// sample records the latencies the winner a tells, at now: its own, and,
// when a hedge beat the first attempt, the time the first attempt had run —
// a lower bound of its latency. Leaving it out would hide exactly the slow
// attempts the quantile is to mark, and pull the delay down until the fast
// ones are hedged too. Losing hedges tell nothing (they started late). c.mu
// is held.
func (c *call) sample(a *attempt, now time.Time) {
	lat := c.s.lat
	if lat == nil {
		return
	}
	first := now.Sub(c.first.start)
	if c.wired {
		first -= c.wire // time spent waiting in the client is not the upstream's
	}
	if a.n == 0 {
		lat.observe(now, first)
		return
	}
	lat.observe(now, now.Sub(a.start))
	if !c.first.finished {
		lat.observe(now, first)
	}
}

// outcome waits, on the caller's goroutine, until the call is decided or
// the caller gives up, and returns what the caller gets: the winner, else
// the last failed response, else the last error. The returned response's
// context is canceled when its body is closed or read to the end.
func (c *call) outcome() (*http.Response, error) {
	c.mu.Lock()
	if !c.decided {
		done := c.hs.done // not nil: only a hedge can be in flight now
		c.mu.Unlock()
		select {
		case <-done:
		case <-c.parent().Done():
		}
		c.mu.Lock()
		if c.winner == nil && c.parent().Err() != nil {
			// The caller gave up while the call waited: it gets its
			// context's error, whatever failure is held. What is in flight
			// ends with that context and is discarded when it reports.
			if !c.decided {
				c.decide()
			}
			held := c.failed
			c.failed = nil
			c.mu.Unlock()
			if held != nil {
				discard(held.resp)
				c.abort(held)
			}
			return nil, ctxErr(c.parent())
		}
	}
	w := c.winner
	if w == nil {
		w = c.failed
	}
	err := c.err
	c.mu.Unlock()
	if w == nil {
		return nil, err
	}
	if w.n == 0 {
		c.handOut(w.resp)
	} else {
		body.OnDone(w.resp, w.cancel)
	}
	return w.resp, nil
}

// discard drains resp's body (bounded) and closes it.
func discard(resp *http.Response) {
	if resp != nil {
		body.Discard(resp)
	}
}
