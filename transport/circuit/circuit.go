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
// breaker.
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
type breaker struct {
	cb *gobreaker.TwoStepCircuitBreaker[struct{}]
	// openedAt is when the breaker last opened (Unix nanoseconds), recorded
	// from gobreaker's OnStateChange because gobreaker does not expose its
	// expiry; it gives OpenError.RetryIn.
	openedAt atomic.Int64
	// closedAt is when the breaker was made or last closed (Unix
	// nanoseconds): it may not open again within warmUp of it.
	closedAt atomic.Int64
	// halfOpen is set while gobreaker is half-open (by OnStateChange, under
	// gobreaker's lock), so that RoundTrip tells a probe from an ordinary
	// request with one atomic load.
	halfOpen atomic.Bool
	// probe holds the channel closed when the next probe reports; every
	// probe's report closes it and stores a fresh one. Refusals hand it out
	// (OpenError.NextProbe), so that a caller waiting for the breaker
	// (retry.WithWaitForBreaker) learns the outcome when it is known, from
	// one probe, instead of polling the breaker.
	probe atomic.Pointer[chan struct{}]
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

// Outcomes handed to gobreaker's done callback: it takes an error and asks
// IsSuccessful / IsExcluded about it, so the classification is made here and
// passed through these two values.
var (
	errFailure  = &outcomeError{"failure"}
	errExcluded = &outcomeError{"excluded"}
)

type outcomeError struct{ s string }

func (e *outcomeError) Error() string { return "circuit: " + e.s }

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
	b.closedAt.Store(time.Now().UnixNano())
	probe := make(chan struct{})
	b.probe.Store(&probe)
	c := &t.cfg
	st := gobreaker.Settings{
		Name:         key,
		MaxRequests:  c.probes,
		Interval:     c.window,
		BucketPeriod: max(c.window/windowBuckets, 1),
		Timeout:      c.breakFor,
		ReadyToTrip: func(n gobreaker.Counts) bool {
			// Requests also counts attempts still in flight and excluded
			// ones; the ratio is over finished, classified attempts only.
			done := uint64(n.TotalSuccesses) + uint64(n.TotalFailures)
			if done < uint64(c.minRequests) || float64(n.TotalFailures) < c.ratio*float64(done) {
				return false
			}
			if time.Now().UnixNano()-b.closedAt.Load() >= int64(warmUp) {
				return true
			}
			// Saturating: an attempt allowed in a bucket that has since left
			// the window reports into the current one.
			sent := max(uint64(n.Requests)-uint64(n.TotalExclusions), done)
			return float64(n.TotalFailures) >= c.ratio*float64(sent)
		},
		IsExcluded: func(err error) bool { return err == errExcluded },
		OnStateChange: func(name string, from, to gobreaker.State) {
			b.halfOpen.Store(to == gobreaker.StateHalfOpen)
			switch to {
			case gobreaker.StateOpen:
				b.openedAt.Store(time.Now().UnixNano())
			case gobreaker.StateClosed:
				b.closedAt.Store(time.Now().UnixNano())
			}
			if f := c.obs.StateChange; f != nil {
				f(name, fromGobreaker(from), fromGobreaker(to))
			}
		},
	}
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](st)
	return b
}

// RoundTrip sends req to the next RoundTripper unless the breaker of its
// upstream is open, and reports the outcome to the breaker as soon as the
// response headers arrive or the attempt fails. A refused request is not
// sent, its body is closed, and the error is an *OpenError matching ErrOpen.
// The response is returned unchanged, whatever its status.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	key := t.keyFor(req)
	b := t.breakers.Get(key)
	// Loaded before Allow: should a probe report in between, this channel
	// is already closed and a waiter asks again at once, rather than waiting
	// on the next probe's channel for a breaker that has closed.
	probe := *b.probe.Load()
	done, err := b.cb.Allow()
	if err != nil {
		body.CloseRequest(req)
		oe := &OpenError{Key: key, State: Open, probe: probe}
		if err == gobreaker.ErrTooManyRequests {
			oe.State = HalfOpen
		} else if d := time.Duration(b.openedAt.Load() + int64(t.cfg.breakFor) - time.Now().UnixNano()); d > 0 {
			oe.RetryIn = d
		}
		ctx := req.Context()
		callctx.Emit(ctx, callctx.Event{
			Kind:    callctx.KindCircuitRejected,
			Attempt: callctx.Attempt(ctx),
			Delay:   oe.RetryIn,
			Reason:  oe.State.String(),
			Key:     key,
		})
		return nil, oe
	}
	isProbe := b.halfOpen.Load()
	reported := false
	defer func() {
		// next panicked: report a failure, or a half-open breaker would
		// wait forever for its probe and refuse everything.
		if !reported {
			done(errFailure)
			if isProbe {
				b.probeReported()
			}
		}
	}()
	resp, err := t.next.RoundTrip(req)
	reported = true
	resp, err = body.Checked(resp, err, "circuit")
	done(t.outcome(req, resp, err))
	if isProbe {
		b.probeReported() // after done: the waiters find the new state
	}
	return resp, err
}

// outcome classifies one attempt for gobreaker: nil is a success.
func (t *Transport) outcome(req *http.Request, resp *http.Response, err error) error {
	if ctx := req.Context(); err != nil && ctx.Err() != nil &&
		!errors.Is(context.Cause(ctx), callctx.ErrAttemptTimeout) {
		// The caller gave up (canceled, or its deadline passed): nothing
		// was learned about the upstream. An attempt timeout set above
		// this layer, marked by its cause, is the upstream being slow.
		return errExcluded
	}
	if err != nil && refusal.IsLocal(err) {
		// A layer below refused to send (a rate or concurrency limit, server
		// pushback, an exhausted budget): the upstream was not even asked,
		// so the attempt says nothing about its health. Counting it would
		// open the breaker on a healthy upstream during a burst.
		return errExcluded
	}
	if errors.Is(err, body.ErrNilResponse) {
		// A broken next RoundTripper: count it against the upstream path,
		// whatever WithFailure says of errors.
		return errFailure
	}
	if t.cfg.isFailure(resp, err) {
		return errFailure
	}
	return nil
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
