// Package budget caps the total time of one logical call — every attempt,
// backoff wait and body read included — and carries what is left to the
// upstream, so a chain of services shares one shrinking budget.
//
// Transport gives each call the deadline min(caller's deadline, now + total),
// refuses to send when too little is left, and reports a spent budget as
// ErrExhausted. PropagateTransport, placed inside the retry layer, sends the
// remaining milliseconds on every attempt (Request-Timeout-Ms), and Handler
// turns that header back into the inbound request's deadline.
//
//	client := outbound.Wrap(http.DefaultClient,
//		budget.Middleware(budget.WithTotal(10*time.Second)),
//		retry.Middleware(),
//		budget.DeadlineMiddleware(),
//	)
package budget

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outboundhttp/outbound/internal/body"
	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/internal/idle"
)

// Remaining returns the time left before ctx's deadline (zero once it has
// passed) and true, or false when ctx has no deadline. The deadline may come
// from a Transport, a Handler or the caller; layers that wait (retry backoff,
// rate-limit queues) use it to skip a wait that cannot finish in time.
func Remaining(ctx context.Context) (time.Duration, bool) {
	dl, ok := ctx.Deadline()
	if !ok {
		return 0, false
	}
	return max(time.Until(dl), 0), true
}

// Transport is an http.RoundTripper that gives every call a total time budget.
// The context passed on carries the deadline min(parent deadline, now +
// total); it is canceled, and its timer released, when the caller closes the
// response body or reads it to EOF — not when RoundTrip returns, so the body
// can be read until the deadline — or at once when RoundTrip fails.
//
// A request with less than the minimum time left (WithMinRemaining) is not
// sent: RoundTrip closes its body and returns an *ExhaustedError with
// Refused set. A call whose budget deadline passes while it is in flight
// fails with an *ExhaustedError wrapping the attempt's error. Both match
// ErrExhausted and context.DeadlineExceeded. When the caller's own deadline
// is the earlier one and passes, or the caller cancels, the error is the
// caller's context error, not ErrExhausted.
//
// A Transport is safe for concurrent use; it holds no state between calls.
// Its zero value is not usable: build one with NewTransport.
type Transport struct {
	next  http.RoundTripper
	cfg   config
	cause *ExhaustedError // the cause of this Transport's deadlines
}

var _ http.RoundTripper = (*Transport)(nil)

// NewTransport returns a Transport that passes requests to next (nil means
// http.DefaultTransport). It panics on invalid options.
func NewTransport(next http.RoundTripper, opts ...Option) *Transport {
	return newTransport(next, newConfig(opts))
}

// Middleware returns a middleware for outbound.Chain that wraps its argument
// in a Transport. Place it outside (before) retry, so one budget covers all
// attempts and the waits between them. It panics on invalid options.
func Middleware(opts ...Option) func(http.RoundTripper) http.RoundTripper {
	cfg := newConfig(opts)
	return func(next http.RoundTripper) http.RoundTripper { return newTransport(next, cfg) }
}

func newTransport(next http.RoundTripper, cfg config) *Transport {
	if next == nil {
		next = http.DefaultTransport
	}
	return &Transport{next: next, cfg: cfg, cause: &ExhaustedError{Budget: cfg.total, cause: true}}
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	parent := req.Context()
	if err := parent.Err(); err != nil {
		body.CloseRequest(req)
		return nil, t.doneBeforeSend(parent)
	}
	now := time.Now()
	deadline := now.Add(t.cfg.total)
	if rd, ok := redirectDeadline(req); ok && rd.Before(deadline) {
		deadline = rd
	}
	pd, hasParent := parent.Deadline()
	parentFirst := hasParent && !deadline.Before(pd)
	if parentFirst {
		deadline = pd
	}
	if left := deadline.Sub(now); left < t.cfg.minRemaining {
		// Failing now beats sending a request whose answer cannot arrive in
		// time (the load would be thrown away) or sleeping past the deadline
		// as go-retryablehttp does (#272).
		body.CloseRequest(req)
		left = max(left, 0)
		callctx.Emit(parent, callctx.Event{Kind: callctx.KindBudgetExhausted, Attempt: callctx.Attempt(parent), Delay: left, Reason: "min_remaining"})
		return nil, &ExhaustedError{Budget: t.budgetOf(parent, parentFirst), Refused: true, Remaining: left}
	}
	if parentFirst {
		// The caller's deadline comes first: it already bounds the call and
		// there is no timer of ours to release, so the request goes on as is.
		// Should that deadline pass, it is the caller's (plain
		// context.DeadlineExceeded), unless it is a budget deadline too (an
		// outer Transport's or a Handler's), which attemptErr recognises.
		resp, err := t.next.RoundTrip(req)
		if resp, err = body.Checked(resp, err, "budget"); err != nil {
			return nil, t.attemptErr(parent, err)
		}
		return resp, nil
	}
	ctx := &budgetCtx{parent: parent, deadline: deadline, cause: t.cause}
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	if resp, err = body.Checked(resp, err, "budget"); err != nil {
		err = t.attemptErr(ctx, err) // before release, which would change the cause
		ctx.release()
		return nil, err
	}
	if resp.Body == nil || resp.Body == http.NoBody {
		// Nothing left to read: release now, as body.OnDone would, without
		// the method value it keeps.
		resp.Body = http.NoBody
		ctx.release()
		return resp, nil
	}
	body.OnDone(resp, ctx.release)
	return resp, nil
}

// redirectDeadline returns the budget deadline of the previous hop when req
// follows a redirect. http.Client sends each hop through the Transport as a
// new request (req.Response is the redirect that caused it), so without this
// every hop would get a fresh budget and a chain of redirects could run far
// past it. req.Response.Request is the request the innermost layer sent; its
// context descends from the previous hop's budget context, whose deadline is
// read through budgetCtx rather than Deadline(), which would give a shorter
// per-attempt timeout set below (retry.WithAttemptTimeout) instead.
func redirectDeadline(req *http.Request) (time.Time, bool) {
	if req.Response == nil || req.Response.Request == nil {
		return time.Time{}, false
	}
	if b, ok := req.Response.Request.Context().Value(budgetCtxKey{}).(*budgetCtx); ok {
		return b.deadline, true
	}
	return time.Time{}, false
}

// budgetCtxKey finds the nearest budgetCtx in a context chain.
type budgetCtxKey struct{}

// budgetCtx is the context of a call under a Transport's deadline. It is
// the caller's context with the budget's deadline, and marks the call with
// that deadline so that a later redirect hop can find it below any
// per-attempt deadline.
//
// The cancelable context that enforces the deadline
// (context.WithDeadlineCause: a context, a timer, its function and a cancel
// function) is made only when something needs it: a layer below that waits
// on Done or makes a child context (net/http's Transport does both), an Err
// asked for once the deadline has passed, or a release. A call whose layers
// below only read the deadline and the values costs this one allocation
// instead of five. Once made, everything is the standard context's, so
// context.Cause and child contexts see a standard one; before, nothing can
// have canceled it but the caller, whose context answers.
//
// context.Cause of a budgetCtx that was never made reports the caller's
// cause even after the deadline passed, until Err is asked: every layer
// asks Err first (Cause is meaningful only once Err is non-nil).
type budgetCtx struct {
	parent   context.Context
	deadline time.Time // before the parent's, if it has one
	cause    error

	made     atomic.Bool // ctx and cancel are set
	released atomic.Bool // written under mu
	mu       sync.Mutex
	ctx      context.Context
	cancel   context.CancelFunc
}

var _ context.Context = (*budgetCtx)(nil)

// get returns the cancelable context, making it the first time; a context
// made after the release is canceled at once.
func (c *budgetCtx) get() context.Context {
	if c.made.Load() {
		return c.ctx
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.made.Load() {
		c.ctx, c.cancel = context.WithDeadlineCause(c.parent, c.deadline, c.cause)
		if c.released.Load() {
			c.cancel()
		}
		c.made.Store(true)
	}
	return c.ctx
}

// Deadline returns the budget's deadline, the earlier one.
func (c *budgetCtx) Deadline() (time.Time, bool) { return c.deadline, true }

// Done returns the channel closed when the deadline passes, the caller's
// context ends or the call is released.
func (c *budgetCtx) Done() <-chan struct{} { return c.get().Done() }

// Err returns the context's error. Before the cancelable context is made, it
// is the caller's, unless the deadline has passed or the call was released:
// then the context is made, done at once with the budget's cause.
func (c *budgetCtx) Err() error {
	if c.made.Load() {
		return c.ctx.Err()
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	// time.Until reads only the monotonic clock (deadline carries a
	// monotonic reading), half the cost of time.Now on this path, which
	// every layer below that checks for a done context takes.
	if c.released.Load() || time.Until(c.deadline) <= 0 {
		return c.get().Err()
	}
	return nil
}

// Value returns the mark for budgetCtxKey, and otherwise the caller's values
// (the cancelable context's once made, which context.Cause looks up).
func (c *budgetCtx) Value(k any) any {
	if k == (budgetCtxKey{}) {
		return c
	}
	if c.made.Load() {
		return c.ctx.Value(k)
	}
	return c.parent.Value(k)
}

func (c *budgetCtx) String() string { return "budget.context" }

// release ends the call's context when the caller is done with the
// response, or at once when the attempt failed: canceled if it was made, so
// its timer stops and nothing stays registered with the caller's context,
// and canceled at once if something makes it later.
func (c *budgetCtx) release() {
	c.mu.Lock()
	c.released.Store(true)
	made := c.made.Load()
	c.mu.Unlock()
	if made {
		c.cancel()
	}
}

// budgetOf reports the budget a refusal ran into: the parent's when its
// deadline was the binding one and is a budget deadline, else ours.
func (t *Transport) budgetOf(parent context.Context, parentFirst bool) time.Duration {
	// errors.AsType, not errors.As: a refusal costs no allocation for the
	// target pointer.
	if !parentFirst {
		return t.cfg.total
	}
	if ee, ok := errors.AsType[*ExhaustedError](context.Cause(parent)); ok {
		return ee.Budget
	}
	return t.cfg.total
}

// doneBeforeSend is the error for a request whose context was already done.
func (t *Transport) doneBeforeSend(parent context.Context) error {
	cause := context.Cause(parent)
	if ee, ok := errors.AsType[*ExhaustedError](cause); ok {
		callctx.Emit(parent, callctx.Event{Kind: callctx.KindBudgetExhausted, Attempt: callctx.Attempt(parent), Reason: "deadline"})
		return &ExhaustedError{Budget: ee.Budget, Refused: true}
	}
	if err := parent.Err(); cause != err {
		return fmt.Errorf("budget: request not sent: %w (%w)", err, cause)
	}
	return fmt.Errorf("budget: request not sent: %w", cause)
}

// attemptErr classifies the error of an attempt. If ctx's deadline passed and
// it is a budget deadline (its cause is an *ExhaustedError: ours, an outer
// Transport's, or a Handler's), the error becomes an *ExhaustedError; an
// error that already is one (from an inner layer) is kept. Otherwise err is
// returned as is, made to match the context's error if the context is done.
func (t *Transport) attemptErr(ctx context.Context, err error) error {
	if ee, ok := errors.AsType[*ExhaustedError](err); ok && !ee.cause {
		return err // an inner Transport's verdict, already reported
	}
	ctxErr := ctx.Err()
	if ctxErr == nil {
		return err
	}
	cause := context.Cause(ctx)
	if ee, ok := errors.AsType[*ExhaustedError](cause); ok {
		callctx.Emit(ctx, callctx.Event{Kind: callctx.KindBudgetExhausted, Attempt: callctx.Attempt(ctx), Reason: "deadline"})
		if err == cause {
			err = nil // net/http returns the cause itself: nothing to add
		}
		return &ExhaustedError{Budget: ee.Budget, Err: err}
	}
	if errors.Is(err, ctxErr) {
		return err
	}
	// The caller canceled or its deadline passed, but the inner layer's
	// error does not say so: keep errors.Is(err, context.Canceled) working.
	return fmt.Errorf("budget: %w: %w", ctxErr, err)
}

// CloseIdleConnections forwards to the wrapped RoundTripper when it has the method.
func (t *Transport) CloseIdleConnections() { idle.Close(t.next) }
