// Package circuit stops sending to an upstream that is down: one circuit
// breaker per upstream (scheme://host:port by default) answers at once with an
// error matching ErrOpen instead of waiting out timeouts, then lets a probe
// through after a break duration and closes again when it succeeds.
//
//	client := outbound.Wrap(http.DefaultClient,
//		retry.Middleware(),
//		circuit.Middleware(),
//	)
//
// The breaker opens when, over a sliding window of 30 s, at least 20 attempts
// have finished and at least 90 % of them failed; it then refuses everything
// for 5 s and sends one probe. It is for an upstream that is down, not one
// that sheds part of its load: overload is answered by ratelimit's adaptive
// concurrency limit and the retry budget. A new or just-closed breaker also
// weighs the attempts still in flight for its first second, because a
// shedding upstream's 503s arrive before its successes.
//
// DefaultIsFailure counts errors and 500, 502, 503, 504 as failures, 429 and
// other 4xx as successes. An attempt that ended because the caller's context
// was canceled or its deadline passed is counted neither way, as is one a
// layer below refused to send; a per-attempt timeout marked with
// internal/callctx.ErrAttemptTimeout counts as a failure. Outcomes are
// reported when the response headers arrive, so a slow body never holds the
// breaker. The state machine is github.com/sony/gobreaker/v2's two-step
// breaker; the closed state's sliding window is counted in this package, in
// atomics, so that an attempt to a healthy upstream takes no lock.
//
// A refusal's OpenError.NextProbe says when the next probe goes and gives a
// channel closed when it has reported, so that a caller can wait for one
// probe's outcome instead of failing (retry.WithWaitForBreaker does).
//
// Put circuit inside retry and budget and outside the rate limiter. Where each
// number comes from, and how the breaker compares with .NET's and gobreaker's
// defaults, is in docs/circuit.md. gobreaker reads time.Now itself; the tests
// use testing/synctest's fake clock.
package circuit

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/outboundhttp/outbound/internal/body"
	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/internal/idle"
	"github.com/outboundhttp/outbound/internal/keyed"
	"github.com/outboundhttp/outbound/internal/refusal"
	"github.com/outboundhttp/outbound/internal/upstream"
)

// Transport is an http.RoundTripper that keeps one circuit breaker per
// upstream key and refuses requests while the breaker of their upstream is
// open. Create it with NewTransport; the zero value is not usable. It is safe
// for concurrent use; its breakers live as long as the Transport (or until
// their key is dropped for the WithMaxKeys bound). It holds no per-request
// resources: the outcome is reported before RoundTrip returns.
type Transport struct {
	next     http.RoundTripper
	cfg      config
	breakers *keyed.Map[*breaker]
	keys     upstream.Cache // default keys, when WithKey is not used
}

var _ http.RoundTripper = (*Transport)(nil)

// breaker is the state of one upstream key.
//
// gobreaker's mutex is taken twice per attempt (Allow and its done), by
// every call to the upstream, so the attempts that need no decision go
// around it: while closed, an attempt counts itself in the closed period's
// window (atomics) and consults gobreaker only when its failure could open
// the breaker; while open, a refusal within the break duration reads the
// phase and nothing else. Probes, and every attempt once the break is over,
// go through gobreaker as before: it stays the one place where the state
// changes.
type breaker struct {
	cb *gobreaker.TwoStepCircuitBreaker[struct{}]
	// phase is the state gobreaker last moved to, with when and, while
	// closed, that period's window. It is replaced (by OnStateChange, under
	// gobreaker's lock) on every change, so an attempt that loaded it tells
	// a change since by pointer.
	phase atomic.Pointer[phase]
	// probe holds the channel closed when the next probe reports; every
	// probe's report closes it and stores a fresh one. Refusals hand it out
	// (OpenError.NextProbe), so that a caller waiting for the breaker
	// (retry.WithWaitForBreaker) learns the outcome when it is known, from
	// one probe, instead of polling the breaker.
	probe atomic.Pointer[chan struct{}]
}

// phase is one stretch of a breaker's life in one state.
type phase struct {
	state State
	// since is when it began: when the breaker opened (it gives
	// OpenError.RetryIn), or when it was made or closed (it may not open
	// again within warmUp of it).
	since time.Time
	win   *window // the closed period's counts; nil unless Closed
}

// probeReported wakes whoever waits for the probe that has just reported:
// the breaker's state already says how it went (closed again, open again,
// or half-open with a free slot when the probe was excluded).
func (b *breaker) probeReported() {
	next := make(chan struct{})
	close(*b.probe.Swap(&next))
}

// warmUp is how long a new or just-closed breaker weighs the attempts still
// in flight before it opens. An upstream that sheds load answers its 503s at
// once while the requests it serves take their full latency, so the first
// outcomes of a burst are nearly all failures even when most requests will
// succeed. Within warmUp the breaker opens only if the failures reach the
// ratio of the attempts sent, in flight included; by its end the concurrency
// limit below (ratelimit's adaptive limit, which halves per 100 ms window of
// shedding) has brought the shedding down and the successes have arrived. A
// dead upstream answering fast has few attempts in flight and still trips at
// once.
const warmUp = time.Second

// outcome is what one attempt says of the upstream's health.
type outcome uint8

const (
	success outcome = iota
	failure
	excluded // nothing learned: the caller gave up, or a layer below refused
)

// Outcomes handed to gobreaker's done callback: it takes an error and asks
// IsSuccessful / IsExcluded about it, so the classification is made here and
// passed through these two values.
var (
	errFailure  = &outcomeError{"failure"}
	errExcluded = &outcomeError{"excluded"}
)

type outcomeError struct{ s string }

func (e *outcomeError) Error() string { return "circuit: " + e.s }

// asError returns o as gobreaker's done callback takes it.
func (o outcome) asError() error {
	switch o {
	case failure:
		return errFailure
	case excluded:
		return errExcluded
	}
	return nil
}

// NewTransport returns a Transport that sends allowed requests to next (nil
// means http.DefaultTransport). It panics on invalid options.
func NewTransport(next http.RoundTripper, opts ...Option) *Transport {
	if next == nil {
		next = http.DefaultTransport
	}
	t := &Transport{next: next, cfg: newConfig(opts)}
	t.breakers = keyed.NewMap(t.cfg.maxKeys, t.newBreaker)
	return t
}

// Middleware returns a function that wraps a RoundTripper in a Transport
// built with opts, for use with outbound.Chain. Each call of the returned
// function builds a Transport with its own breakers.
func Middleware(opts ...Option) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper { return NewTransport(next, opts...) }
}

func (t *Transport) newBreaker(key string) *breaker {
	b := &breaker{}
	c := &t.cfg
	b.phase.Store(&phase{state: Closed, since: time.Now(), win: newWindow(time.Now(), c.window)})
	probe := make(chan struct{})
	b.probe.Store(&probe)
	st := gobreaker.Settings{
		Name:         key,
		MaxRequests:  c.probes,
		Interval:     c.window,
		BucketPeriod: max(c.window/windowBuckets, 1),
		Timeout:      c.breakFor,
		// gobreaker's own counts see only the attempts that went through
		// it; the closed period's window has them all.
		ReadyToTrip: func(gobreaker.Counts) bool { return t.readyToTrip(b.phase.Load(), time.Now()) },
		IsExcluded:  func(err error) bool { return err == errExcluded },
		OnStateChange: func(name string, from, to gobreaker.State) {
			now := time.Now()
			p := &phase{state: fromGobreaker(to), since: now}
			if p.state == Closed {
				p.win = newWindow(now, c.window)
			}
			b.phase.Store(p)
			if f := c.obs.StateChange; f != nil {
				f(name, fromGobreaker(from), fromGobreaker(to))
			}
		},
	}
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](st)
	return b
}

// readyToTrip is the trip rule, over the closed period p's window at now:
// at least minRequests finished, classified attempts (excluded ones and
// those in flight do not count), of which at least the ratio failed; within
// warmUp of the period's start, the failures must also reach the ratio of
// the attempts sent, in flight included.
func (t *Transport) readyToTrip(p *phase, now time.Time) bool {
	if p.state != Closed {
		return false
	}
	c := &t.cfg
	n := p.win.sums(now)
	done := n.successes + n.failures
	if done < int64(c.minRequests) || float64(n.failures) < c.ratio*float64(done) {
		return false
	}
	if now.Sub(p.since) >= warmUp {
		return true
	}
	// An attempt whose outcome was dropped (its bucket left the window)
	// still counts as sent: saturate at the finished ones.
	sent := max(n.requests-n.exclusions, done)
	return float64(n.failures) >= c.ratio*float64(sent)
}

// RoundTrip sends req to the next RoundTripper unless the breaker of its
// upstream is open, and reports the outcome to the breaker as soon as the
// response headers arrive or the attempt fails. A refused request is not
// sent, its body is closed, and the error is an *OpenError matching ErrOpen.
// The response is returned unchanged, whatever its status.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	key := t.keyFor(req)
	b := t.breakers.Get(key)
	// Loaded before the state: should a probe report in between, this
	// channel is already closed and a waiter asks again at once, rather
	// than waiting on the next probe's channel for a breaker that has closed.
	probe := *b.probe.Load()
	p := b.phase.Load()
	switch p.state {
	case Closed:
		return t.closed(req, b, p)
	case Open:
		// gobreaker keeps the breaker open while now <= its expiry, which
		// it set a little before p.since: within the break it refuses.
		if d := t.cfg.breakFor - time.Since(p.since); d > 0 {
			return nil, t.refuse(req, key, &OpenError{Key: key, State: Open, RetryIn: d, probe: probe})
		}
	}
	return t.viaBreaker(req, key, b, probe)
}

// closed sends req while the breaker is closed (phase p), counting it in
// p's window; only a failure that may open the breaker goes to gobreaker.
func (t *Transport) closed(req *http.Request, b *breaker, p *phase) (*http.Response, error) {
	// From the call's start, if a budget layer above read it.
	age := p.win.requestAt(callctx.Since(req.Context(), p.win.start))
	o := failure // if next panics
	defer func() {
		p.win.record(age, o)
		if o == failure && b.phase.Load() == p && t.readyToTrip(p, time.Now()) {
			b.trip(p)
		}
	}()
	resp, err := t.next.RoundTrip(req)
	resp, err = body.Checked(resp, err, "circuit")
	o = t.outcome(req, resp, err)
	return resp, err
}

// trip reports a failure of the closed period p to gobreaker, whose
// ReadyToTrip opens the breaker if the window still says so. Should the
// breaker have left p in the meantime, nothing is reported: the failure
// belongs to a period that is over.
func (b *breaker) trip(p *phase) {
	done, err := b.cb.Allow()
	if err != nil {
		return // opened by another attempt's failure
	}
	if b.phase.Load() != p {
		done(errExcluded) // not a probe: give its place back
		return
	}
	done(errFailure)
}

// viaBreaker sends req through gobreaker's two steps: a probe, or the first
// attempt once the break is over (which makes gobreaker half-open).
func (t *Transport) viaBreaker(req *http.Request, key string, b *breaker, probe chan struct{}) (*http.Response, error) {
	done, err := b.cb.Allow()
	if err != nil {
		oe := &OpenError{Key: key, State: Open, probe: probe}
		if err == gobreaker.ErrTooManyRequests {
			oe.State = HalfOpen
		} else if p := b.phase.Load(); p.state == Open {
			oe.RetryIn = max(t.cfg.breakFor-time.Since(p.since), 0)
		}
		return nil, t.refuse(req, key, oe)
	}
	p := b.phase.Load()
	isProbe := p.state == HalfOpen
	var age int64
	if p.state == Closed { // closed since the caller looked: count it there too
		age = p.win.request()
	}
	o := failure // if next panics: a half-open breaker would wait forever for its probe
	defer func() {
		if p.state == Closed {
			p.win.record(age, o)
		}
		done(o.asError())
		if isProbe {
			b.probeReported() // after done: the waiters find the new state
		}
	}()
	resp, err := t.next.RoundTrip(req)
	resp, err = body.Checked(resp, err, "circuit")
	o = t.outcome(req, resp, err)
	return resp, err
}

// refuse closes req's body and reports the refusal oe.
func (t *Transport) refuse(req *http.Request, key string, oe *OpenError) error {
	body.CloseRequest(req)
	ctx := req.Context()
	callctx.Emit(ctx, callctx.Event{
		Kind:    callctx.KindCircuitRejected,
		Attempt: callctx.Attempt(ctx),
		Delay:   oe.RetryIn,
		Reason:  oe.State.String(),
		Key:     key,
	})
	return oe
}

// outcome classifies one attempt.
func (t *Transport) outcome(req *http.Request, resp *http.Response, err error) outcome {
	if ctx := req.Context(); err != nil && ctx.Err() != nil &&
		!errors.Is(context.Cause(ctx), callctx.ErrAttemptTimeout) {
		// The caller gave up (canceled, or its deadline passed): nothing
		// was learned about the upstream. An attempt timeout set above
		// this layer, marked by its cause, is the upstream being slow.
		return excluded
	}
	if err != nil && refusal.IsLocal(err) {
		// A layer below refused to send (a rate or concurrency limit, server
		// pushback, an exhausted budget): the upstream was not even asked,
		// so the attempt says nothing about its health. Counting it would
		// open the breaker on a healthy upstream during a burst.
		return excluded
	}
	if errors.Is(err, body.ErrNilResponse) {
		// A broken next RoundTripper: count it against the upstream path,
		// whatever WithFailure says of errors.
		return failure
	}
	if t.cfg.isFailure(resp, err) {
		return failure
	}
	return success
}

// State returns the current state of the breaker for key, Closed for a key
// never seen (or dropped for the WithMaxKeys bound). It does not create a
// breaker. Like a request, it moves an Open breaker whose break duration has
// passed to HalfOpen.
func (t *Transport) State(key string) State {
	b, ok := t.breakers.Peek(key)
	if !ok {
		return Closed
	}
	return fromGobreaker(b.cb.State())
}

// CloseIdleConnections forwards to the next RoundTripper when it has the
// method, so http.Client.CloseIdleConnections reaches the base transport.
func (t *Transport) CloseIdleConnections() { idle.Close(t.next) }

// keyFor returns the upstream key of req: the WithKey function's, or the
// default upstream key, cached so the success path does not rebuild it.
func (t *Transport) keyFor(req *http.Request) string {
	if t.cfg.key != nil {
		return t.cfg.key(req)
	}
	return t.keys.Key(req)
}
