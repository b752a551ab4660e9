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
	"time"

	"github.com/outboundhttp/outbound/internal/body"
	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/internal/idle"
	"github.com/outboundhttp/outbound/internal/reqheader"
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
// can be read until the deadline — or at once when RoundTrip fails, or when
// the response has no body or one a layer below read whole into memory (the
// retry layer's buffered bodies), whose reads no context can cut.
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
	ctx, req := t.callFor(req, parent)
	ctx.SetDeadline(now, deadline, t.cause)
	resp, err := t.next.RoundTrip(req)
	if resp, err = body.Checked(resp, err, "budget"); err != nil {
		err = t.attemptErr(ctx, err) // before the release, which would change the cause
		ctx.Release()
		return nil, err
	}
	if body.Settled(resp.Body) {
		// Nothing left to read from the wire (no body, or one a layer below
		// read whole into memory): release now, as body.OnDone would,
		// without the method value it keeps.
		if resp.Body == nil {
			resp.Body = http.NoBody
		}
		ctx.Release()
		return resp, nil
	}
	body.Track(resp, new(body.Tracker), ctx) // the Call releases: no method value to allocate
	return resp, nil
}

// AdoptsCall reports true: a request-ID layer directly above a Transport
// hands it the request copy it made with its call context, and the
// Transport gives that context the call's deadline in place instead of
// making a context and a request copy of its own (internal/callctx.Call).
// Callers need not use the method.
func (t *Transport) AdoptsCall() bool { return true }

// callFor returns the call's context to give the deadline to, and the
// request carrying it. A request-ID layer just above made a request copy
// with a call context for it (callctx.Call): that one is filled in place,
// which spares a context and a request copy. Otherwise the Transport makes
// its own, with the one copy of the request it must make anyway.
//
// The call's context is lazy: the context that enforces the deadline
// (context.WithDeadlineCause: a context, a timer, its function and a cancel
// function) is made only when needed — Done, a child context, Err once the
// deadline has passed, or the release — so a call whose layers below only
// read the deadline costs one allocation, and with net/http's Transport
// below (it waits on Done) as many as before. It also marks the call with
// its deadline for redirectDeadline.
func (t *Transport) callFor(req *http.Request, parent context.Context) (*callctx.Call, *http.Request) {
	if c, ok := callctx.Adopt(req); ok {
		return c, req
	}
	c := callctx.NewCall(parent)
	return c, req.WithContext(c)
}

// redirectDeadline returns the budget deadline of the previous hop when req
// follows a redirect. http.Client sends each hop through the Transport as a
// new request (req.Response is the redirect that caused it), so without this
// every hop would get a fresh budget and a chain of redirects could run far
// past it. req.Response.Request is the request the innermost layer sent; its
// context descends from the previous hop's call context, whose deadline is
// read through callctx.CallDeadline rather than Deadline(), which would give a shorter
// per-attempt timeout set below (retry.WithAttemptTimeout) instead.
func redirectDeadline(req *http.Request) (time.Time, bool) {
	if req.Response == nil || req.Response.Request == nil {
		return time.Time{}, false
	}
	return callctx.CallDeadline(req.Response.Request.Context())
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

// PresetHeaders forwards what the RoundTripper below reports
// (internal/reqheader.Preset): the header fields a layer below sets on every
// request that lacks them, which this layer passes on unchanged, so a
// request-ID layer above may set them on the copy it makes anyway and spare
// that layer a copy of its own. Callers need not use the method.
func (t *Transport) PresetHeaders() http.Header { return reqheader.Preset(t.next) }
