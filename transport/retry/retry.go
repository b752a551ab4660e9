// Package retry retries failed HTTP attempts without storming the upstream,
// without losing or re-reading a request body, and always hands the caller the
// last response when there is one.
//
// What it retries by default: 408, 429, 502, 503 and 504 responses; timeouts
// of an attempt; connections refused, reset or closed before a response; HTTP/2
// refused streams and GOAWAY. Only idempotent methods (RFC 9110 §9.2.2) and
// requests carrying an Idempotency-Key are repeated, except after errors that
// prove nothing was sent. Waits use equal-jitter exponential backoff, lengthened
// by the server's Retry-After or RateLimit-Reset, and are never started when
// they would end after the deadline of the request context. A retry budget per
// upstream keeps retries under 20 % of the traffic, so a full outage is not
// multiplied by every client. WithIdempotencyKeys gives POST and PATCH a key
// so that they are repeated too, against servers that deduplicate by it;
// WithWaitForBreaker makes a call refused by an open circuit breaker below
// wait for the breaker's probe when its deadline reaches it.
//
// The shortest correct use:
//
//	client := &http.Client{Transport: retry.NewTransport(nil)}
//
// With a total time budget, place the budget layer outside retry so waits are
// cut short by it (see outbound.Chain).
package retry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/outboundhttp/outbound/internal/body"
	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/internal/clock"
	"github.com/outboundhttp/outbound/internal/idle"
	"github.com/outboundhttp/outbound/internal/keyed"
	"github.com/outboundhttp/outbound/internal/pushback"
	"github.com/outboundhttp/outbound/internal/refusal"
	"github.com/outboundhttp/outbound/internal/reqheader"
	"github.com/outboundhttp/outbound/internal/upstream"
)

// Transport is an http.RoundTripper that retries failed attempts of idempotent
// requests. Create it with NewTransport; the zero value is not usable. It is
// safe for concurrent use; the retry budgets it keeps per upstream are shared
// by all requests through it.
//
// RoundTrip returns the last response with a nil error whenever an attempt
// obtained one (whatever its status), or a *Error wrapping the last attempt's
// error. Every response it retries is read (at most 64 KiB within 100 ms)
// and closed, so its connection is reused; it is kept in memory, and returned
// if a layer below then refuses the next attempt (a longer or slower body
// cannot be kept, and the refusal is returned instead). Resources of the returned attempt (the attempt
// timeout's timer) are released when the caller closes the response body or
// reads it to the end.
type Transport struct {
	next    http.RoundTripper
	cfg     config
	budgets *keyed.Map[*retryBudget] // nil when the budget is off
	keys    upstream.Cache           // default keys, when WithKey is not used
	// spendsBelow: next spends the retry budget (a hedge layer); asked
	// once here, not per call.
	spendsBelow bool
}

var _ http.RoundTripper = (*Transport)(nil)

// NewTransport returns a Transport that sends attempts through next (nil means
// http.DefaultTransport). Invalid options panic here, never on the request path.
func NewTransport(next http.RoundTripper, opts ...Option) *Transport {
	if next == nil {
		next = http.DefaultTransport
	}
	t := &Transport{next: next, cfg: defaultConfig(), spendsBelow: callctx.SpendsRetryBudget(next)}
	for _, o := range opts {
		if o != nil {
			o.apply(&t.cfg)
		}
	}
	if t.cfg.budget {
		c := &t.cfg
		t.budgets = keyed.NewMap(c.maxKeys, func(string) *retryBudget { return newRetryBudget(c) })
		t.keys.Max = c.maxKeys
	}
	return t
}

// Middleware returns a middleware that wraps a RoundTripper in a Transport
// built with opts, for use with outbound.Chain. Each call of the returned
// function builds a Transport with its own retry budgets.
func Middleware(opts ...Option) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper { return NewTransport(next, opts...) }
}

// Attempt returns the attempt number carried by ctx: 0 for the first attempt,
// 1 for the first resend, and 0 in a context that did not come from a retry
// Transport. Layers inside the Transport use it, for example to set the
// OpenTelemetry attribute http.request.resend_count.
func Attempt(ctx context.Context) int { return callctx.Attempt(ctx) }

// CloseIdleConnections forwards to the wrapped RoundTripper when it has the
// method. The Transport itself never calls it.
func (t *Transport) CloseIdleConnections() { idle.Close(t.next) }

// PresetHeaders forwards what the RoundTripper below reports
// (internal/reqheader.Preset): the header fields a layer below sets on every
// request that lacks them, which this layer passes on unchanged, so a
// request-ID layer above may set them on the copy it makes anyway and spare
// that layer a copy of its own; the fields this layer reads or sets are left
// out. Callers need not use the method.
func (t *Transport) PresetHeaders() http.Header {
	// Not the fields this layer reads (a key makes a request retryable) or
	// sets (the key it makes, the attempt number).
	return reqheader.Without(reqheader.Preset(t.next), IdempotencyKeyHeader, t.cfg.attemptHeader)
}

// RetryInfo describes a failed attempt that could have been retried; it is
// passed to Observer.Retry.
type RetryInfo struct {
	Request    *http.Request // the caller's request; must not be modified
	Attempt    int           // number of the failed attempt, 0 for the first
	StatusCode int           // its status; 0 when it failed with an error
	Err        error         // its error; nil when it got a response
	Reason     string        // why it failed: "status_503", "timeout", "connection_reset", ...
	Delay      time.Duration // wait before the next attempt; 0 when refused
	// Refused is empty when the next attempt is scheduled; otherwise why it is
	// not: "attempts", "budget", "deadline", "not_idempotent" or
	// "body_not_rewindable".
	Refused string
	Key     string // upstream key of the retry budget; empty when the budget is off
}

// bodySource yields the body of each attempt. It never hands out a body that
// an earlier attempt may have read: attempt 0 gets the caller's body, later
// attempts a fresh one from GetBody (or from the buffer of WithBufferBodies).
type bodySource struct {
	first      io.ReadCloser
	getBody    func() (io.ReadCloser, error)
	rewindable bool
	buffered   bool  // the body was read into memory (WithBufferBodies)
	length     int64 // ContentLength for every attempt
}

func (t *Transport) bodySource(req *http.Request) (bodySource, error) {
	rb := req.Body
	src := bodySource{first: rb, getBody: req.GetBody, length: req.ContentLength}
	switch {
	case rb == nil || rb == http.NoBody:
		src.rewindable = true
		src.getBody = nil // every attempt sends rb itself
	case req.GetBody != nil:
		src.rewindable = true
	case t.cfg.bufferLimit > 0 && req.ContentLength <= t.cfg.bufferLimit:
		limit := t.cfg.bufferLimit
		buf, err := io.ReadAll(io.LimitReader(rb, limit+1))
		if err != nil {
			rb.Close()
			return src, fmt.Errorf("reading request body: %w", err)
		}
		if int64(len(buf)) > limit {
			// Too long to buffer: send what was read followed by the rest, once.
			src.first = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(buf), rb), rb}
			return src, nil
		}
		rb.Close()
		src.rewindable, src.buffered = true, true
		src.length = int64(len(buf))
		src.getBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
		src.first, _ = src.getBody()
	}
	return src, nil
}

// next returns the body for a resend: a fresh one from GetBody, or the
// caller's nil/NoBody body. ok is false when GetBody fails.
func (s *bodySource) next() (io.ReadCloser, bool) {
	if !s.rewindable {
		return nil, false
	}
	if s.getBody == nil {
		return s.first, true // no body: nil or http.NoBody
	}
	b, err := s.getBody()
	if err != nil || b == nil {
		return nil, false
	}
	return b, true
}

// RoundTrip sends req, retrying as configured. See Transport for what it
// returns. req is never modified: the first attempt sends req itself when
// this layer has nothing to change, every other attempt a copy whose context
// carries the attempt number (Attempt reads 0 when none is carried).
//
// The steps, in the order a request meets them: admit (idempotency, body
// source, retry budget), then per attempt: send, await the breaker's probe
// (WithWaitForBreaker), decide, and wait.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var cl call // on the stack: a call is never shared beyond RoundTrip
	if err := t.admit(req, &cl); err != nil {
		return nil, err
	}
	attemptBody := cl.src.first
	for n := 0; ; n++ {
		a := cl.send(n, attemptBody)
		for {
			b, again, err := cl.awaitProbe(a)
			if err != nil {
				return nil, err
			}
			if !again {
				break
			}
			// The refused attempt never left: it is sent again, with the
			// same number, once the probe has reported.
			a = cl.send(n, b)
		}
		if cl.kept != nil && a.err != nil && refusal.IsLocal(a.err) && cl.ctx.Err() == nil {
			// A layer below refused this attempt: the caller gets the
			// upstream's previous answer, as the contract promises.
			a.release()
			callctx.Emit(cl.ctx, callctx.Event{Kind: callctx.KindRetryRefused, Attempt: n, Reason: "refused_below", Key: cl.key})
			return cl.kept, nil
		}
		cl.kept = nil
		if !a.retryable {
			return finish(a.resp, a.err, n, nil, a.cancel)
		}
		info, nextBody, stop := cl.decide(a)
		cl.report(info, stop)
		if stop != nil {
			return finish(a.resp, a.err, n, stop, a.cancel)
		}
		attemptBody = nextBody
		if err := cl.wait(a, info.Delay); err != nil {
			if attemptBody != nil && attemptBody != cl.src.first {
				attemptBody.Close()
			}
			return nil, &Error{Attempts: n + 1, Err: ctxErr(cl.ctx, err)}
		}
	}
}

// call is the state of one logical call across its attempts.
type call struct {
	t          *Transport
	req        *http.Request
	ctx        context.Context
	idempotent bool
	idemKey    string // the Idempotency-Key this layer adds to every attempt; "" for none
	src        bodySource
	key        string       // upstream key of the retry budget; "" when it is off
	bud        *retryBudget // nil when the retry budget is off
	// kept is the last retried response, held in memory (bounded) so that it
	// can still be returned if the next attempt is refused by a layer below
	// (an open breaker, a rate limit): the caller then gets the upstream's
	// answer rather than the refusal.
	kept *http.Response
	// probed is set once a breaker's probe reported while the call waited
	// for it (WithWaitForBreaker): without a deadline, it waits for no more.
	probed bool
}

// admit prepares the call: whether it may be repeated (RFC 9110 §9.2.2, or an
// Idempotency-Key), where each attempt's body comes from, and the request it
// counts in the upstream's retry budget.
func (t *Transport) admit(req *http.Request, cl *call) error {
	c := &t.cfg
	*cl = call{t: t, req: req, ctx: req.Context(), idempotent: c.methods[req.Method]}
	keyed := c.idemKey && (req.Method == http.MethodPost || req.Method == http.MethodPatch)
	if !cl.idempotent || keyed {
		if req.Header.Get(IdempotencyKeyHeader) != "" {
			cl.idempotent = true // the caller's key, kept as it is
		} else if keyed {
			// One key per call, sent on every attempt: the server sees one
			// operation however often it arrives.
			cl.idemKey = `"` + uuid.NewString() + `"`
			cl.idempotent = true
		}
	}
	src, err := t.bodySource(req)
	if err != nil {
		return &Error{Err: err}
	}
	cl.src = src
	if t.budgets != nil {
		if c.keyFunc != nil {
			cl.key = c.keyFunc(req)
		} else {
			cl.key = t.keys.Key(req)
		}
		cl.bud = t.budgets.Get(cl.key)
		cl.bud.request(callctx.Now(cl.ctx)) // the call's start, if a budget layer above read it
		if t.spendsBelow {
			// A hedge layer below spends this budget too (docs/hedge.md).
			// The call's own context carries it when it can (a budget or
			// request-ID layer above made one); else the call pays for a
			// context that carries it.
			spare := (*spareBudget)(cl.bud)
			if c, ok := cl.ctx.(*callctx.Call); !ok || !c.SetRetryBudget(spare) {
				cl.ctx = callctx.WithRetryBudget(cl.ctx, spare)
				cl.req = req.WithContext(cl.ctx)
			}
		}
	}
	return nil
}

// attempt is the outcome of one attempt.
type attempt struct {
	n                 int
	ctx               context.Context // the attempt's context
	cancel            context.CancelFunc
	resp              *http.Response
	err               error
	retryable, unsent bool
}

// release ends the attempt's own timer, if it has one.
func (a *attempt) release() {
	if a.cancel != nil {
		a.cancel()
	}
}

// send makes attempt n with body b and classifies its outcome. A response
// that is not retried as it is gets its body read inside the attempt when it
// is small (WithResponseBuffer), so a read that fails is a failed attempt.
func (cl *call) send(n int, b io.ReadCloser) attempt {
	a := attempt{n: n, ctx: cl.ctx}
	a.ctx, a.cancel = cl.attemptContext(n)
	areq := cl.attemptRequest(n, a.ctx, b)
	resp, err := cl.t.next.RoundTrip(areq)
	a.resp, a.err = body.Checked(resp, err, "retry")
	a.retryable, a.unsent = cl.t.retryable(cl.ctx, a.ctx, a.resp, a.err)
	if a.err == nil && !a.retryable && cl.buffers(n) {
		if err := cl.buffer(a.resp, n); err != nil {
			a.resp, a.err = nil, err
			a.retryable, a.unsent = cl.t.retryable(cl.ctx, a.ctx, nil, err)
		}
	}
	return a
}

// attemptContext returns the context of attempt n: it carries the attempt
// number and, with WithAttemptTimeout, the attempt's own deadline.
func (cl *call) attemptContext(n int) (context.Context, context.CancelFunc) {
	actx := cl.ctx
	// An absent number reads as 0, so the first attempt needs none — unless
	// an outer retry layer's number is in ctx, which must not show through as
	// ours.
	// A body read into memory (WithBufferBodies) took its upload's time
	// since the call's clock reading, which the layers below would take for
	// the attempt's start (callctx.Now): a context of its own makes them read
	// the clock afresh.
	if n > 0 || callctx.Attempt(cl.ctx) != 0 || cl.src.buffered {
		actx = callctx.WithAttempt(cl.ctx, n)
	}
	if d := cl.t.cfg.attemptTO; d > 0 {
		// The cause tells layers below (and this one) that the attempt ran
		// out of its own time rather than the caller's; when the caller's
		// deadline is sooner, the context keeps the caller's cause.
		return context.WithTimeoutCause(actx, d, callctx.ErrAttemptTimeout)
	}
	return actx, nil
}

// attemptRequest returns the request of attempt n. Each attempt is its own
// copy of the request, so the caller's request is never touched. Only when
// this layer changes headers does it pay for a new header map
// (reqheader.Copy); otherwise a shallow copy (req.WithContext) shares the
// caller's read-only header map, as net/http's own Client.send does.
func (cl *call) attemptRequest(n int, actx context.Context, b io.ReadCloser) *http.Request {
	req, src, c := cl.req, &cl.src, &cl.t.cfg
	changesHeaders := cl.idemKey != "" || c.attemptHeader != ""
	if !changesHeaders && actx == cl.ctx && b == req.Body && src.length == req.ContentLength && !src.buffered {
		return req // nothing to change: the caller's request, read-only
	}
	var areq *http.Request
	if !changesHeaders {
		areq = req.WithContext(actx)
	} else {
		// The one way a layer copies a request to change its header: a
		// shallow copy with its own header map (a deep req.Clone would copy
		// the URL and every value for nothing, as no layer modifies them).
		var buf [2]reqheader.Field
		fs := buf[:0]
		if cl.idemKey != "" {
			fs = append(fs, reqheader.Field{Key: IdempotencyKeyHeader, Values: []string{cl.idemKey}})
		}
		if c.attemptHeader != "" {
			fs = append(fs, reqheader.Field{Key: c.attemptHeader, Values: []string{strconv.Itoa(n)}})
		}
		areq = reqheader.Copy(req, actx, fs...)
	}
	areq.Body = b
	areq.ContentLength = src.length
	if src.buffered {
		areq.GetBody = src.getBody // lets net/http rewind the buffer too
	}
	return areq
}

// decide says whether the retryable attempt a is retried: when, with which
// body, or why not (stop is then the sentinel the caller's error matches).
func (cl *call) decide(a attempt) (info RetryInfo, nextBody io.ReadCloser, stop error) {
	c := &cl.t.cfg
	now := time.Now()
	n := a.n
	info = RetryInfo{Request: cl.req, Attempt: n, Err: a.err, Reason: reason(a.ctx, a.resp, a.err), Key: cl.key}
	if a.resp != nil {
		info.StatusCode = a.resp.StatusCode
	}
	switch {
	case n+1 >= c.maxAttempts:
		info.Refused, stop = "attempts", ErrAttempts
	case !cl.idempotent && !a.unsent:
		info.Refused, stop = "not_idempotent", ErrNotIdempotent
	case !cl.src.rewindable:
		info.Refused, stop = "body_not_rewindable", ErrBodyNotRewindable
	}
	if stop != nil {
		return info, nil, stop
	}
	info.Delay = cl.t.delay(n, a.resp, now)
	if dl, ok := cl.ctx.Deadline(); ok && !now.Add(info.Delay+minAttemptTime).Before(dl) {
		// Sleeping would outlive the caller: hand back what we have now
		// (go-retryablehttp sleeps through the deadline instead).
		info.Delay = 0
		info.Refused, stop = "deadline", ErrDeadline
	} else if cl.bud != nil && !cl.bud.withdraw(now) {
		info.Delay = 0
		info.Refused, stop = "budget", ErrBudget
	} else if b, ok := cl.src.next(); !ok {
		info.Delay = 0
		info.Refused, stop = "body_not_rewindable", ErrBodyNotRewindable
	} else {
		nextBody = b
	}
	return info, nextBody, stop
}

// report announces the decision: a call event for the tracing layers and the
// Observer.Retry.
func (cl *call) report(info RetryInfo, stop error) {
	if stop != nil {
		callctx.Emit(cl.ctx, callctx.Event{Kind: callctx.KindRetryRefused, Attempt: info.Attempt, Reason: info.Refused, Key: cl.key})
	} else {
		callctx.Emit(cl.ctx, callctx.Event{Kind: callctx.KindRetry, Attempt: info.Attempt + 1, Delay: info.Delay, Reason: info.Reason, Key: cl.key})
	}
	if f := cl.t.cfg.obs.Retry; f != nil {
		f(cl.ctx, info)
	}
}

// wait holds on to what can still be returned of attempt a, releases the
// rest, and sleeps d or until the caller gives up.
func (cl *call) wait(a attempt, d time.Duration) error {
	if a.resp != nil && body.Keep(a.resp) {
		// Read before the wait, so the connection goes back to the pool.
		cl.kept = a.resp
	}
	a.release()
	return clock.Sleep(cl.ctx, d)
}

// minAttemptTime is the least time worth starting another attempt with: a
// wait that would leave less before the deadline returns the response in hand
// instead of trading it for a certain deadline error.
const minAttemptTime = 10 * time.Millisecond

// finish returns the outcome of attempt n to the caller.
func finish(resp *http.Response, err error, n int, stop error, cancel context.CancelFunc) (*http.Response, error) {
	if resp != nil {
		if cancel != nil {
			body.OnDone(resp, cancel) // the attempt's timer lives until the body is done
		}
		return resp, nil
	}
	if cancel != nil {
		cancel()
	}
	return nil, &Error{Attempts: n + 1, Err: err, Stop: stop}
}

// ctxErr returns the error for a wait cut short by ctx: ctx.Err(), joined with
// its cause when a layer set one (context.WithDeadlineCause), so both
// errors.Is(err, context.DeadlineExceeded) and the cause match.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		return err
	}
	err = ctx.Err()
	if cause := context.Cause(ctx); cause != nil && cause != err {
		return fmt.Errorf("%w: %w", err, cause)
	}
	return err
}

// retryable reports whether the outcome of one attempt may be retried, and
// whether it proves the request was not processed by the server.
func (t *Transport) retryable(ctx, actx context.Context, resp *http.Response, err error) (retryable, unsent bool) {
	if err == nil && t.cfg.checkRetry == nil && !t.retriedStatus(resp.StatusCode) {
		// Not retried whether or not the caller gave up: the usual answer
		// needs no ctx.Err, which reads the clock for a budget layer's
		// deadline (internal/callctx.Call).
		return false, false
	}
	if ctx.Err() != nil {
		return false, false // never after the caller gave up
	}
	if err != nil && refusal.IsLocal(err) {
		return false, false // a layer below shed this request on purpose
	}
	if err != nil {
		_, retryable, unsent = errReason(err)
		if attemptTimedOut(actx) {
			retryable = true // the attempt's own deadline, not the caller's
		}
	} else {
		retryable = t.retriedStatus(resp.StatusCode)
	}
	if t.cfg.checkRetry != nil {
		retryable, _ = t.cfg.checkRetry(ctx, resp, err)
	}
	return retryable, unsent
}

// retriedStatus reports whether a response with status code is retried.
func (t *Transport) retriedStatus(code int) bool {
	return code >= 0 && code < len(t.cfg.statuses) && t.cfg.statuses[code]
}

// attemptTimedOut reports whether actx ended by WithAttemptTimeout's timer.
func attemptTimedOut(actx context.Context) bool {
	return actx.Err() != nil && errors.Is(context.Cause(actx), callctx.ErrAttemptTimeout)
}

// reason names why an attempt failed, for events and RetryInfo.
func reason(actx context.Context, resp *http.Response, err error) string {
	if resp != nil {
		return statusReason(resp.StatusCode)
	}
	if attemptTimedOut(actx) {
		return "timeout"
	}
	r, _, _ := errReason(err)
	return r
}

// delay is the wait before retrying attempt n: the backoff, lengthened to the
// server's pushback when it asks for more. WithMaxRetryAfter caps the
// pushback only, so a small cap (or 0, which ignores Retry-After) never
// shortens the backoff itself.
func (t *Transport) delay(n int, resp *http.Response, now time.Time) time.Duration {
	c := &t.cfg
	var d time.Duration
	if c.backoffFunc != nil {
		d = c.backoffFunc(c.initial, c.max, n, resp)
		// A go-retryablehttp Backoff may return the Retry-After itself
		// (DefaultBackoff does): bound it like our own pushback.
		if ceil := max(c.max, c.maxRetryAfter); d > ceil {
			d = ceil
		}
	} else {
		d = equalJitter(c.initial, c.max, n, c.randN)
	}
	if resp != nil {
		if p, ok := pushback.Delay(resp.Header, now); ok {
			p = min(p, c.maxRetryAfter)
			d = max(d, p)
		}
	}
	return max(d, 0)
}

// equalJitter returns a wait uniform in [c/2, c], c = min(max, initial·2^n):
// half of the backoff is kept and half is jittered ("equal jitter", AWS
// Architecture Blog, "Exponential Backoff and Jitter", 2015). Full jitter,
// uniform in [0, c], spreads callers more, but it can give one call retries
// that all come at once: in an outage from the start, such a call's four
// attempts all fail within a few hundred milliseconds. That is before the
// breaker has seen enough failures to open and hold the call for its probe.
// Over 24 rounds of the outage-recovery drill under -race, full jitter lost
// one such call in 6 rounds and two in 2 (TestScorecardClaims then fails
// against go-retryablehttp); equal jitter lost none.
// The first retry still comes within 100-200 ms, the window still spreads
// callers that failed together, and the retry budget bounds what they add.
func equalJitter(initial, max time.Duration, n int, randN func(int64) int64) time.Duration {
	ceil := max
	if n < 62 && initial <= max>>uint(n) {
		ceil = initial << uint(n)
	}
	if ceil <= 0 {
		return 0
	}
	half := ceil / 2
	return half + time.Duration(randN(int64(ceil-half)+1))
}
