// Package ratelimit protects upstreams with rate and concurrency limits and
// honours server pushback, as an http.RoundTripper, keyed per upstream.
//
// Placed below retry in the chain, every attempt (retries included) takes a
// token and a concurrency slot, so the limits protect the upstream rather
// than count logical calls. Waits honour the request's context; a wait that
// cannot end before the deadline fails at once with an error matching
// ErrLimited, never by sleeping and then failing.
//
//	rt := ratelimit.NewTransport(http.DefaultTransport,
//		ratelimit.WithRate(50, 10),                 // 50 requests/s per upstream, bursts of 10
//		ratelimit.WithAdaptiveConcurrency(4, 100),  // in flight per upstream: follows the upstream
//	)
//
// The adaptive concurrency limit (WithAdaptiveConcurrency, the standard
// stack's default) grows while the upstream's latency stays near its
// baseline and falls when the latency inflates or the upstream sheds with
// 429, 503 or timeouts, so a client keeps an overloaded upstream busy without
// making it shed; WithConcurrency sets a fixed limit instead. Requests beyond
// the limit wait in a FIFO queue for at most the queue timeout (2 s).
//
// For one quota shared by many replicas, plug in a shared Limiter such as
// redisrate.New with WithSharedLimiter.
package ratelimit

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/outboundhttp/outbound/internal/body"
	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/internal/clock"
	"github.com/outboundhttp/outbound/internal/idle"
	"github.com/outboundhttp/outbound/internal/keyed"
	"github.com/outboundhttp/outbound/internal/pushback"
	"github.com/outboundhttp/outbound/internal/upstream"
)

// Transport is an http.RoundTripper that applies rate limits, concurrency
// limits and server pushback per upstream key before passing a request to the
// next RoundTripper. It is safe for concurrent use; its state (token buckets,
// slots, pauses) lives in the Transport, for at most WithMaxKeys keys. A
// concurrency slot is released when the caller closes the response body or
// reads it to EOF, or at once when the next RoundTripper returns an error.
// Build it with NewTransport; the zero value is not usable.
type Transport struct {
	next   http.RoundTripper
	cfg    *config
	states *keyed.Map[*keyState]
	keys   upstream.Cache // default keys, when WithKey is not used
}

var _ http.RoundTripper = (*Transport)(nil)

// keyState is the per-key state. Requests keep a pointer to it while in
// flight, so a key dropped from the map for the bound still releases its
// slots correctly; its successor starts with fresh limits.
type keyState struct {
	rate        *rate.Limiter // per-key token bucket; nil without WithRate
	sem         *semaphore    // nil without a concurrency limit
	adaptive    *adaptive     // nil unless WithAdaptiveConcurrency; then sem is adaptive.sem
	pausedUntil atomic.Int64  // UnixNano until which the server asked for quiet; 0: none
}

// NewTransport returns a Transport that limits requests before passing them
// to next; a nil next means http.DefaultTransport. Without options it only
// honours server pushback (429/503 with Retry-After or RateLimit-Reset, a
// spent RateLimit quota on any response). It
// panics on invalid options (see each WithX).
func NewTransport(next http.RoundTripper, opts ...Option) *Transport {
	return newTransport(next, newConfig(opts))
}

func newTransport(next http.RoundTripper, cfg *config) *Transport {
	if next == nil {
		next = http.DefaultTransport
	}
	t := &Transport{next: next, cfg: cfg}
	t.states = keyed.NewMap(cfg.maxKeys, func(string) *keyState {
		st := &keyState{}
		if cfg.perSecond > 0 {
			st.rate = rate.NewLimiter(rate.Limit(cfg.perSecond), cfg.burst)
		}
		switch {
		case cfg.adaptive != nil:
			st.adaptive = newAdaptive(cfg.adaptive, cfg.queue)
			st.sem = st.adaptive.sem
		case cfg.concurrency > 0:
			st.sem = newSemaphore(cfg.concurrency, cfg.queue)
		}
		return st
	})
	return t
}

// Middleware returns a function that wraps a RoundTripper in a Transport with
// opts, for outbound.Chain. Options are checked at once (invalid ones panic
// here); every wrapped RoundTripper gets a Transport, and limits, of its own.
func Middleware(opts ...Option) func(http.RoundTripper) http.RoundTripper {
	cfg := newConfig(opts)
	return func(next http.RoundTripper) http.RoundTripper { return newTransport(next, cfg) }
}

// CloseIdleConnections calls CloseIdleConnections on the next RoundTripper
// when it has that method.
func (t *Transport) CloseIdleConnections() { idle.Close(t.next) }

// RoundTrip waits for the key's server pushback, a concurrency slot and a
// rate token, in that order, then sends req through the next RoundTripper.
// A refused request is not sent, its body is closed, and the error is a
// *LimitError matching ErrLimited. The slot is taken before the token so that
// requests leave at the limited rate even after queueing for a slot.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		body.CloseRequest(req)
		return nil, fmt.Errorf("ratelimit: %w", err)
	}
	key := t.keyFor(req)
	st := t.states.Get(key)
	tracked, err := t.admit(ctx, key, st)
	if err != nil {
		body.CloseRequest(req)
		return nil, err
	}
	callctx.NoteAdmitted(ctx, st) // saturation.go: a hedge above asks before it sends a copy
	var start int64               // the adaptive limit's clock
	if st.adaptive != nil {
		start = st.adaptive.now()
	}
	// Until the slot is handed to the response body, this call owns it: the
	// deferred release also covers a panic in next (net/http's server
	// recovers handler panics, so a leaked slot would refuse the key for good).
	handedOff := false
	var seen outcome // outcomeIgnored if next panics
	var rtt time.Duration
	if tracked {
		defer func() {
			if !handedOff {
				t.done(ctx, key, st, start, rtt, seen)
			}
		}()
	}
	resp, err := t.next.RoundTrip(req)
	resp, err = body.Checked(resp, err, "ratelimit")
	if st.adaptive != nil {
		rtt = time.Duration(st.adaptive.now() - start)
		seen = classify(ctx, resp, err)
	}
	if err != nil {
		return nil, err
	}
	if t.cfg.maxPushback > 0 {
		switch resp.StatusCode {
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			t.notePushback(ctx, key, st, resp.Header)
		default:
			// A success may say the quota is spent: RateLimit r=0 asks the
			// client not to send again before t (draft-ietf-httpapi-
			// ratelimit-headers-11 §5: a client SHOULD NOT exceed the
			// remaining quota). Retry-After means nothing on a 2xx
			// (RFC 9110 §10.2.3), so only the RateLimit field counts here.
			if d, ok := pushback.RateLimitDelay(resp.Header); ok {
				t.pause(ctx, key, st, d)
			}
		}
	}
	if tracked {
		handedOff = true
		if body.Settled(resp.Body) {
			// Nothing left to read from the wire: release now, as
			// body.OnDone would, without making the closure it keeps.
			if resp.Body == nil {
				resp.Body = http.NoBody
			}
			t.done(ctx, key, st, start, rtt, seen)
			return resp, nil
		}
		// The release and the body's wrapper in one allocation.
		r := &slotRelease{t: t, ctx: ctx, key: key, st: st, start: start, rtt: rtt, seen: seen}
		body.Track(resp, &r.Tracker, r)
	}
	return resp, nil
}

// slotRelease is what a response with a body holds until the caller is done
// with it: done's arguments, and the body's wrapper (body.Tracker).
type slotRelease struct {
	body.Tracker
	t     *Transport
	ctx   context.Context
	key   string
	st    *keyState
	start int64
	rtt   time.Duration
	seen  outcome
}

// Release gives back what admit took (Transport.done).
func (r *slotRelease) Release() { r.t.done(r.ctx, r.key, r.st, r.start, r.rtt, r.seen) }

// admit makes the request wait for, or refuses it by, each limit of key. It
// reports whether the request holds a slot or is counted in flight, to be
// released by done.
func (t *Transport) admit(ctx context.Context, key string, st *keyState) (tracked bool, err error) {
	if err := t.waitPushback(ctx, key, st); err != nil {
		return false, err
	}
	if st.sem != nil {
		queued, err := t.acquire(ctx, key, st.sem)
		if err != nil {
			return false, err
		}
		if queued {
			// A pause may have begun while this request queued.
			if err := t.waitPushback(ctx, key, st); err != nil {
				st.sem.release()
				return false, err
			}
		}
	}
	if err := t.waitRate(ctx, key, st); err != nil {
		if st.sem != nil {
			st.sem.release()
		}
		return false, err
	}
	if t.cfg.obs.InFlight != nil {
		t.cfg.obs.InFlight(ctx, key, 1)
		return true, nil
	}
	return st.sem != nil, nil
}

// done releases what admit took, once the caller is done with the response;
// an adaptive limit also learns the attempt's outcome o and latency rtt.
func (t *Transport) done(ctx context.Context, key string, st *keyState, start int64, rtt time.Duration, o outcome) {
	switch {
	case st.adaptive != nil:
		stats, moved := st.adaptive.done(start, rtt, o)
		if moved && t.cfg.obs.Concurrency != nil {
			t.cfg.obs.Concurrency(ctx, key, stats)
		}
	case st.sem != nil:
		st.sem.release()
	}
	if t.cfg.obs.InFlight != nil {
		t.cfg.obs.InFlight(ctx, key, -1)
	}
}

// acquire takes a concurrency slot, waiting in the FIFO queue for at most the
// queue timeout and never past ctx. queued reports whether it had to wait.
func (t *Transport) acquire(ctx context.Context, key string, s *semaphore) (queued bool, err error) {
	w, ok, full := s.enter()
	if ok {
		return false, nil
	}
	if full {
		return false, t.reject(ctx, &LimitError{Key: key, Reason: ReasonQueue, detail: "queue full"})
	}
	start := w.start
	if w.timer == nil {
		w.timer = time.NewTimer(t.cfg.queueTimeout)
	} else {
		w.timer.Reset(t.cfg.queueTimeout)
	}
	for {
		select {
		case <-ready(w):
			stopTimer(w.timer)
			s.recycle(w)
			t.waited(ctx, key, ReasonConcurrency, start)
			return true, nil
		case fired := <-w.timer.C:
			if fired.Before(start) {
				continue // a tick left over from the timer's last wait
			}
			s.leave(w)
			s.recycle(w)
			t.waited(ctx, key, ReasonConcurrency, start)
			return false, t.reject(ctx, &LimitError{Key: key, Reason: ReasonConcurrency,
				detail: "no slot free within " + t.cfg.queueTimeout.String()})
		case <-ctx.Done():
			stopTimer(w.timer)
			s.leave(w)
			s.recycle(w)
			t.waited(ctx, key, ReasonConcurrency, start)
			return false, fmt.Errorf("ratelimit: waiting for a concurrency slot for %s: %w", key, ctx.Err())
		}
	}
}

// stopTimer stops a pooled waiter's timer and drops a tick it may already
// have sent. Since Go 1.23 Stop alone guarantees that no stale tick is
// received later, but a main module built with GODEBUG=asynctimerchan=1 gets
// the older timers, whose channel keeps a tick sent before Stop (and may still
// receive one sent while Stop runs). The drain handles the first case; the
// next wait ignores a tick older than its own start, which handles the second.
func stopTimer(timer *time.Timer) {
	if !timer.Stop() {
		select {
		case <-timer.C:
		default:
		}
	}
}

// waitPushback waits out a pause the upstream asked for, or refuses the
// request at once when the pause outlasts its deadline.
func (t *Transport) waitPushback(ctx context.Context, key string, st *keyState) error {
	for {
		until := st.pausedUntil.Load()
		if until == 0 {
			return nil
		}
		now := time.Now()
		d := time.Unix(0, until).Sub(now)
		if d <= 0 {
			return nil
		}
		if pastDeadline(ctx, now, d) {
			return t.reject(ctx, &LimitError{Key: key, Reason: ReasonPushback, RetryAfter: d,
				detail: "upstream asked for a pause of " + d.String() + ", past the deadline"})
		}
		err := clock.Sleep(ctx, d)
		t.waited(ctx, key, ReasonPushback, now)
		if err != nil {
			return fmt.Errorf("ratelimit: waiting out server pushback for %s: %w", key, err)
		}
	}
}

// notePushback pauses key for as long as a 429 or 503 response asks.
func (t *Transport) notePushback(ctx context.Context, key string, st *keyState, h http.Header) {
	d, ok := pushback.Delay(h, time.Now())
	if !ok {
		return
	}
	t.pause(ctx, key, st, d)
}

// pause keeps key paused for d from now, capped by WithMaxPushback; a later
// pause never shortens an earlier one.
func (t *Transport) pause(ctx context.Context, key string, st *keyState, d time.Duration) {
	if d <= 0 {
		return
	}
	d = min(d, t.cfg.maxPushback)
	until := time.Now().Add(d).UnixNano()
	for {
		old := st.pausedUntil.Load()
		if old >= until {
			return
		}
		if st.pausedUntil.CompareAndSwap(old, until) {
			break
		}
	}
	if t.cfg.obs.Pushback != nil {
		t.cfg.obs.Pushback(ctx, key, d)
	}
}

// waitRate takes a token from the key's limiter, waiting for it if the
// deadline allows.
func (t *Transport) waitRate(ctx context.Context, key string, st *keyState) error {
	if t.cfg.shared != nil {
		return t.waitShared(ctx, key)
	}
	lim := st.rate
	if lim == nil {
		lim = t.cfg.global
	}
	if lim == nil {
		return nil
	}
	now := time.Now()
	if lim.AllowN(now, 1) { // no allocation on the path that does not wait
		return nil
	}
	// As rate.Limiter.WaitN does: reserve a place in line, and give it back
	// when the wait would pass the deadline or the context ends.
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return t.reject(ctx, &LimitError{Key: key, Reason: ReasonRate, detail: "limiter admits no request"})
	}
	d := r.DelayFrom(now)
	if d <= 0 {
		return nil
	}
	if pastDeadline(ctx, now, d) {
		r.CancelAt(now)
		return t.reject(ctx, &LimitError{Key: key, Reason: ReasonRate, RetryAfter: d,
			detail: "wait of " + d.String() + " would pass the deadline"})
	}
	err := clock.Sleep(ctx, d)
	t.waited(ctx, key, ReasonRate, now)
	if err != nil {
		r.CancelAt(time.Now())
		return fmt.Errorf("ratelimit: waiting for the rate limit of %s: %w", key, err)
	}
	return nil
}

// waitShared asks the shared limiter, waiting its RetryAfter and asking
// again while the deadline allows.
func (t *Transport) waitShared(ctx context.Context, key string) error {
	var start time.Time
	for {
		res, err := t.cfg.shared.Allow(ctx, key)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("ratelimit: asking the shared limiter for %s: %w", key, ctx.Err())
			}
			return t.reject(ctx, &LimitError{Key: key, Reason: ReasonRate, Err: err,
				detail: "shared limiter failed"})
		}
		if res.Fallback != nil {
			// The degraded mode must show wherever the call is observed,
			// not only to a caller who wired an Observer.
			callctx.Emit(ctx, callctx.Event{Kind: callctx.KindRateLimitFallback, Attempt: callctx.Attempt(ctx),
				Reason: "shared_limiter_unreachable", Key: key})
			if t.cfg.obs.Fallback != nil {
				t.cfg.obs.Fallback(ctx, key, res.Fallback)
			}
		}
		if res.Allowed {
			if !start.IsZero() {
				t.waited(ctx, key, ReasonRate, start)
			}
			return nil
		}
		now := time.Now()
		if start.IsZero() {
			start = now
		}
		d := res.RetryAfter
		if d <= 0 {
			return t.reject(ctx, &LimitError{Key: key, Reason: ReasonRate, detail: "shared limiter refused"})
		}
		if pastDeadline(ctx, now, d) {
			return t.reject(ctx, &LimitError{Key: key, Reason: ReasonRate, RetryAfter: d,
				detail: "wait of " + d.String() + " would pass the deadline"})
		}
		if err := clock.Sleep(ctx, d); err != nil {
			t.waited(ctx, key, ReasonRate, start)
			return fmt.Errorf("ratelimit: waiting for the shared rate limit of %s: %w", key, err)
		}
	}
}

// waited reports a wait that began at start.
func (t *Transport) waited(ctx context.Context, key string, reason Reason, start time.Time) {
	d := time.Since(start)
	callctx.Emit(ctx, callctx.Event{Kind: callctx.KindRateLimitWait, Attempt: callctx.Attempt(ctx),
		Delay: d, Reason: string(reason), Key: key})
	if t.cfg.obs.Wait != nil {
		t.cfg.obs.Wait(ctx, key, reason, d)
	}
}

// reject reports a refusal and returns e.
func (t *Transport) reject(ctx context.Context, e *LimitError) error {
	callctx.Emit(ctx, callctx.Event{Kind: callctx.KindRateLimitRejected, Attempt: callctx.Attempt(ctx),
		Delay: e.RetryAfter, Reason: string(e.Reason), Key: e.Key})
	if t.cfg.obs.Reject != nil {
		t.cfg.obs.Reject(ctx, e.Key, e.Reason)
	}
	return e
}

// pastDeadline reports whether a wait of d from now would end after ctx's
// deadline.
func pastDeadline(ctx context.Context, now time.Time, d time.Duration) bool {
	dl, ok := ctx.Deadline()
	return ok && now.Add(d).After(dl)
}

// Concurrency returns the state of the concurrency limit of key: its current
// limit, the requests in flight and queued, and for an adaptive limit the
// baseline and recent latency. ok is false when the Transport has no
// concurrency limit or has no state for key (never used, or dropped for the
// WithMaxKeys bound). It does not create state for key.
func (t *Transport) Concurrency(key string) (s ConcurrencyStats, ok bool) {
	st, ok := t.states.Peek(key)
	switch {
	case !ok || st.sem == nil:
		return ConcurrencyStats{}, false
	case st.adaptive != nil:
		return st.adaptive.stats(), true
	}
	cur, waiting := st.sem.inUse()
	return ConcurrencyStats{Limit: st.sem.limit(), InFlight: cur, Queued: waiting}, true
}

// keyFor returns the upstream key of req: the WithKey function's, or the
// default upstream key, cached so the success path does not rebuild it.
func (t *Transport) keyFor(req *http.Request) string {
	if t.cfg.key != nil {
		return t.cfg.key(req)
	}
	return t.keys.Key(req)
}
