// Package hedge cuts the latency tail of HTTP calls with hedged requests: when
// an attempt has not answered after the upstream's usual latency, a copy of
// it is sent, and whichever answers first is returned; the other is
// canceled, and its response, if any, drained and closed.
//
// Only requests that are safe to send twice are hedged: an idempotent method
// (RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE) or an
// Idempotency-Key header, and a body that can be sent again (none, or
// GetBody; every copy gets its own). The delay is, by default, the
// upstream's recent 95th percentile latency, tracked per upstream in a
// DDSketch; WithDelay fixes it instead. Hedges spend the retry budget of a
// retry layer above, or a budget of their own with the same defaults, so
// they never add more than 20 % to an upstream's load.
//
// The shortest correct use:
//
//	client := &http.Client{Transport: hedge.NewTransport(nil)}
//
// In a stack, place it just below the retry layer and above the circuit
// breaker and the rate limits, which then meter every hedge like any
// attempt (see outbound.Chain and docs/hedge.md).
package hedge

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outboundhttp/outbound/internal/body"
	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/internal/clock"
	"github.com/outboundhttp/outbound/internal/idempotent"
	"github.com/outboundhttp/outbound/internal/idle"
	"github.com/outboundhttp/outbound/internal/keyed"
	"github.com/outboundhttp/outbound/internal/reqheader"
	"github.com/outboundhttp/outbound/internal/retrybudget"
	"github.com/outboundhttp/outbound/internal/upstream"
)

// Transport is an http.RoundTripper that hedges slow attempts. Build it with
// NewTransport; the zero value is not usable. It is safe for concurrent use;
// the latencies and budgets it keeps per upstream are shared by all requests
// through it.
//
// RoundTrip sends the request at once. If nothing has answered after the
// delay, it sends a hedge (up to WithMaxHedges, one delay apart), as long as
// the budget allows; an empty budget stops new hedges and never cancels an
// attempt in flight. The first response that is not a retryable failure
// (429, 502, 503 or 504) wins: it is returned, and every other attempt is
// canceled (its context, with context.Canceled, which the adaptive
// concurrency limit of transport/ratelimit ignores) and its response drained
// and closed so the connection is reused. A retryable failure never wins
// while another attempt is in flight; when none is, the call ends with the
// last response, or the last error if no attempt got a response, for the
// retry layer above to handle. So a 503 that comes back before the delay is
// returned at once, unhedged: retrying it, with backoff, is the retry
// layer's job.
//
// The first attempt runs on the caller's goroutine, each hedge on a
// goroutine of its own. The context of the attempt that won, and its
// cancel, live until the caller closes the response body or reads it to the
// end; everything else (the timer, the other attempts) is released when the
// winner is known. When the caller's context ends while the call waits for
// a hedge, RoundTrip returns the context's error at once.
//
// Budget: when the Transport is the next RoundTripper of a transport/retry
// Transport (as in outbound.NewClient and the recommended order), hedges
// spend that layer's per-upstream retry budget, so retries and hedges
// together stay within it. Otherwise (no retry layer, a retry layer without
// a budget, or another layer in between) the Transport keeps a budget of its
// own per upstream, see WithBudget.
type Transport struct {
	next   http.RoundTripper
	cfg    config
	states *keyed.Map[*state]
	keys   upstream.Cache // default keys, when WithKey is not used
	timers sync.Pool      // *hedgeTimer of calls that sent no hedge (first.go)
	hooks  sync.Pool      // *wireHook, the ClientTrace of first attempts (first.go)
}

var _ http.RoundTripper = (*Transport)(nil)

// state is what the Transport keeps for one upstream.
type state struct {
	key string
	lat *latency            // nil with a fixed delay
	own *retrybudget.Budget // used when no retry layer above shares its budget
	// wire is set once an attempt to the upstream reported, through
	// httptrace's GetConn, when it left the client: from then on hedge
	// delays count from there (first.go).
	wire atomic.Bool
}

// NewTransport returns a Transport that sends attempts through next (nil
// means http.DefaultTransport). Without options it hedges once, after the
// upstream's recent 95th percentile latency (at least DefaultMinDelay), once
// DefaultMinSamples latencies are known. Invalid options panic when they are
// made, never on the request path.
func NewTransport(next http.RoundTripper, opts ...Option) *Transport {
	if next == nil {
		next = http.DefaultTransport
	}
	t := &Transport{next: next, cfg: defaultConfig()}
	for _, o := range opts {
		if o != nil {
			o.apply(&t.cfg)
		}
	}
	c := &t.cfg
	t.keys.Max = c.maxKeys
	t.states = keyed.NewMap(c.maxKeys, func(key string) *state {
		s := &state{key: key, own: retrybudget.New(c.ratio, c.window, c.minPerSecond)}
		if !c.fixed() {
			s.lat = newLatency(c)
		}
		return s
	})
	return t
}

// Middleware returns a middleware that wraps a RoundTripper in a Transport
// built with opts, for use with outbound.Chain. Each call of the returned
// function builds a Transport with state of its own.
func Middleware(opts ...Option) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper { return NewTransport(next, opts...) }
}

// CloseIdleConnections forwards to the wrapped RoundTripper when it has the
// method. The Transport itself never calls it.
func (t *Transport) CloseIdleConnections() { idle.Close(t.next) }

// PresetHeaders forwards what the RoundTripper below reports
// (internal/reqheader.Preset): the header fields a layer below sets on every
// request that lacks them, which this layer passes on unchanged, so a
// request-ID layer above may set them on the copy it makes anyway and spare
// that layer a copy of its own; the fields this layer reads are left out.
// Callers need not use the method.
func (t *Transport) PresetHeaders() http.Header {
	// Not the fields hedgeable reads.
	return reqheader.Without(reqheader.Preset(t.next), IdempotencyKeyHeader, "Upgrade")
}

// SpendsRetryBudget reports whether the Transport hedges at all (WithMaxHedges
// above 0). A transport/retry Transport whose next RoundTripper this is asks,
// and then passes its retry budget down in the context of every call, so
// that hedges spend it; callers need not use the method.
func (t *Transport) SpendsRetryBudget() bool { return t.cfg.maxHedges > 0 }

// Delay returns the delay after which an attempt to the upstream key
// ("scheme://host:port" unless WithKey says otherwise) gets a hedge now, and
// false while it is not known: with WithQuantile, until DefaultMinSamples
// latencies of the upstream are known, or when none came for two
// DefaultLatencyWindows. With a fixed delay it is that delay, for any key.
func (t *Transport) Delay(key string) (time.Duration, bool) {
	if t.cfg.fixed() {
		return t.cfg.delay, true
	}
	s, ok := t.states.Peek(key)
	if !ok {
		return 0, false
	}
	return s.lat.current(time.Now())
}

// RoundTrip sends req, hedging it when it is slow. See Transport for what it
// returns. req is never modified: every attempt is a shallow copy carrying
// its own context, and every hedge a body of its own from req.GetBody.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.cfg.maxHedges == 0 || !hedgeable(req) {
		resp, err := t.next.RoundTrip(req)
		return body.Checked(resp, err, "hedge")
	}
	var key string
	if t.cfg.keyFunc != nil {
		key = t.cfg.keyFunc(req)
	} else {
		key = t.keys.Key(req)
	}
	s := t.states.Get(key)
	ctx := req.Context()
	start := callctx.Now(ctx) // the call's start, if a budget layer above read it
	if _, shared := callctx.RetryBudget(ctx); !shared {
		s.own.Request(start)
	}
	delay, ok := t.cfg.delay, true
	if s.lat != nil {
		delay, ok = s.lat.current(start)
	}
	if dl, has := ctx.Deadline(); ok && has && !start.Add(delay).Before(dl) {
		ok = false // a hedge could not be sent before the deadline
	}
	if !ok && s.lat == nil {
		resp, err := t.next.RoundTrip(req)
		return body.Checked(resp, err, "hedge")
	}
	// Not armed (!ok): no hedge, but a latency to record, from when the
	// attempt leaves the client, as for an armed call.
	c := &call{t: t, req: req, s: s, delay: delay, armed: ok, pool: !clock.InBubble(start)}
	c.first.start = start
	return c.run()
}

// hedgeable reports whether req may be sent twice: an idempotent method
// (RFC 9110 §9.2.2) or an Idempotency-Key, a body that can be sent again,
// and no protocol upgrade (one upgraded connection is wanted, not two).
func hedgeable(req *http.Request) bool {
	if !idempotent.Method(req.Method) && len(req.Header[IdempotencyKeyHeader]) == 0 {
		return false
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	return len(req.Header["Upgrade"]) == 0
}

// wins reports whether an outcome ends the call: a response that is not a
// retryable failure. 429, 502, 503 and 504 say that another attempt may fare
// better (transport/retry retries them by default); any other status is the
// upstream's answer, which a second attempt would repeat.
func wins(resp *http.Response, err error) bool {
	if err != nil {
		return false
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return false
	}
	return true
}

// ctxErr returns the error for a call the caller gave up on: ctx.Err(),
// joined with its cause when a layer set one, so that both
// errors.Is(err, context.DeadlineExceeded) and the cause match.
func ctxErr(ctx context.Context) error {
	err := ctx.Err()
	if cause := context.Cause(ctx); cause != nil && cause != err {
		return fmt.Errorf("hedge: %w: %w", err, cause)
	}
	return err
}
