package retry

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"golang.org/x/net/http/httpguts"

	"github.com/outboundhttp/outbound/internal/idempotent"
	"github.com/outboundhttp/outbound/internal/retrybudget"
)

// Option configures a Transport. Options are applied in order after the
// defaults, so a later option overrides an earlier one.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// Defaults, from the reference article (4 attempts, 200 ms growing to 3 s) with
// equal jitter (AWS's "Exponential Backoff and Jitter") instead of additive jitter.
const (
	DefaultMaxAttempts   = 4
	DefaultInitial       = 200 * time.Millisecond
	DefaultMaxBackoff    = 3 * time.Second
	DefaultMaxRetryAfter = 30 * time.Second
	DefaultMaxKeys       = 1024
)

// Retry budget defaults — 20 % of requests over 10 s, with a floor of 3 per
// second — after Finagle's RetryBudget (ttl 10 s, 20 % of requests) and
// Envoy's retry budgets (budget_percent 20 %, a small floor of
// min_retry_concurrency 3). See WithRetryBudget. The hedge layer's own budget
// has the same defaults (one value, in internal/retrybudget).
// They are named for the retry budget, not the time budget of package budget.
const (
	DefaultRetryBudgetRatio        = retrybudget.DefaultRatio
	DefaultRetryBudgetWindow       = retrybudget.DefaultWindow
	DefaultRetryBudgetMinPerSecond = retrybudget.DefaultMinPerSecond
)

// Former names of the retry budget defaults.
//
// Deprecated: use DefaultRetryBudgetRatio, DefaultRetryBudgetWindow and
// DefaultRetryBudgetMinPerSecond; "budget" alone also names the time budget.
const (
	DefaultBudgetRatio        = DefaultRetryBudgetRatio
	DefaultBudgetWindow       = DefaultRetryBudgetWindow
	DefaultBudgetMinPerSecond = DefaultRetryBudgetMinPerSecond
)

// DefaultStatuses returns the response statuses retried by default, in a new
// slice: 408 (the server gave up waiting; RFC 9110 §15.5.9 says the client
// may repeat), 429 (RFC 6585 §4, with Retry-After), 502, 503 (RFC 9110
// §15.6.4, with Retry-After) and 504. Never another 4xx; 500 only when
// configured, since it is as likely a bug as a blip.
func DefaultStatuses() []int {
	return []int{
		http.StatusRequestTimeout,
		http.StatusTooManyRequests,
		http.StatusBadGateway,
		http.StatusServiceUnavailable,
		http.StatusGatewayTimeout,
	}
}

// IdempotencyKeyHeader is the header that marks a request as safe to repeat
// (draft-ietf-httpapi-idempotency-key-header).
const IdempotencyKeyHeader = idempotent.KeyHeader

type config struct {
	maxAttempts   int
	initial, max  time.Duration
	attemptTO     time.Duration
	statuses      [600]bool
	methods       map[string]bool
	budget        bool
	ratio         float64
	window        time.Duration
	minPerSecond  float64
	maxRetryAfter time.Duration
	obs           Observer // WithObserver
	idemKey       bool     // WithIdempotencyKeys
	waitBreaker   bool     // WithWaitForBreaker
	bufferLimit   int64
	respBuffer    responseBuffer // WithResponseBuffer
	attemptHeader string
	checkRetry    retryablehttp.CheckRetry
	backoffFunc   retryablehttp.Backoff
	keyFunc       func(*http.Request) string // nil: upstream.Key, cached
	maxKeys       int

	// Test hook (export_test.go): the jitter's randomness. Tests control
	// time with testing/synctest instead.
	randN func(n int64) int64 // uniform in [0, n)
}

func defaultConfig() config {
	c := config{
		maxAttempts:   DefaultMaxAttempts,
		initial:       DefaultInitial,
		max:           DefaultMaxBackoff,
		budget:        true,
		ratio:         DefaultBudgetRatio,
		window:        DefaultBudgetWindow,
		minPerSecond:  DefaultBudgetMinPerSecond,
		maxRetryAfter: DefaultMaxRetryAfter,
		maxKeys:       DefaultMaxKeys,
		respBuffer:    newResponseBuffer(DefaultResponseBuffer),
		randN:         rand.Int64N,
	}
	for _, s := range DefaultStatuses() {
		c.statuses[s] = true
	}
	c.methods = setOf(idempotent.Methods()...)
	return c
}

func setOf(ms ...string) map[string]bool {
	m := make(map[string]bool, len(ms))
	for _, s := range ms {
		m[s] = true
	}
	return m
}

// WithMaxAttempts sets how many attempts a call may make, counting the first
// (default 4, so at most 3 retries). n must be at least 1; 1 disables retries.
func WithMaxAttempts(n int) Option {
	if n < 1 {
		panic(fmt.Sprintf("retry: WithMaxAttempts(%d): n must be at least 1", n))
	}
	return optionFunc(func(c *config) { c.maxAttempts = n })
}

// WithBackoff sets the exponential backoff between attempts: the wait before
// retry n (0 for the first retry) is uniform in [c/2, c], c = min(max,
// initial·2^n) ("equal jitter", as in AWS's "Exponential Backoff and
// Jitter"), so clients that failed together do not retry together, and no
// call's retries all come at once (see equalJitter). Defaults: 200 ms and 3 s. A
// server's pushback (Retry-After) may lengthen the wait, see WithMaxRetryAfter.
// initial must not be negative and max must not be below initial.
func WithBackoff(initial, max time.Duration) Option {
	if initial < 0 || max < initial {
		panic(fmt.Sprintf("retry: WithBackoff(%v, %v): need 0 <= initial <= max", initial, max))
	}
	return optionFunc(func(c *config) { c.initial, c.max = initial, max })
}

// WithAttemptTimeout bounds each attempt, body included, to d — or to what is
// left of the request context's deadline when that is sooner. An attempt that
// runs out of its own time (not the caller's) is retried as "timeout". The
// timer is released when the caller closes the response body or reads it to
// the end, not when RoundTrip returns. Default: none (attempts are bounded only
// by the request context). d must be positive.
func WithAttemptTimeout(d time.Duration) Option {
	if d <= 0 {
		panic(fmt.Sprintf("retry: WithAttemptTimeout(%v): d must be positive", d))
	}
	return optionFunc(func(c *config) { c.attemptTO = d })
}

// WithStatuses replaces the set of response status codes that are retried.
// Default: 408, 429, 502, 503, 504 — never other 4xx, which repeat the same
// answer, and never 500 or 501, which are rarely transient. Codes must be in
// 100..599. With no codes, no response is retried (errors still are).
func WithStatuses(codes ...int) Option {
	var set [600]bool
	for _, s := range codes {
		if s < 100 || s > 599 {
			panic(fmt.Sprintf("retry: WithStatuses(%d): not an HTTP status code", s))
		}
		set[s] = true
	}
	return optionFunc(func(c *config) { c.statuses = set })
}

// WithMethods replaces the set of methods that may be repeated without an
// Idempotency-Key. Default: the idempotent methods of RFC 9110 §9.2.2 — GET,
// HEAD, OPTIONS, TRACE, PUT, DELETE. Methods are matched exactly (net/http
// method names are upper case).
func WithMethods(methods ...string) Option {
	set := setOf(methods...)
	return optionFunc(func(c *config) { c.methods = set })
}

// WithRetryBudget sets the retry budget kept per upstream (see WithKey):
// over a sliding window, retries may add at most ratio × the requests started
// in that window, plus a floor of minPerSecond × window seconds so that a quiet
// client can still retry. When the budget is spent a failed attempt is not
// retried: its response (or error) is returned and the observer is told
// "budget". This keeps a full outage from being amplified by every client's
// retries (Google SRE book, "Handling Overload"; Envoy retry budgets; Finagle
// RetryBudget; gRPC retry throttling).
//
// Default: ratio 0.2, window 10 s, minPerSecond 3 — at most 20 % extra load,
// and 30 retries per 10 s for a client too quiet for 20 % to allow any. The
// window is kept as 10 buckets, so it slides in steps of window/10. ratio and
// minPerSecond must not be negative, window must be positive. Use
// WithoutRetryBudget to switch the budget off.
func WithRetryBudget(ratio float64, window time.Duration, minPerSecond float64) Option {
	if ratio < 0 || minPerSecond < 0 || window <= 0 || math.IsNaN(ratio) || math.IsNaN(minPerSecond) || math.IsInf(ratio, 0) || math.IsInf(minPerSecond, 0) {
		panic(fmt.Sprintf("retry: WithRetryBudget(%v, %v, %v): need ratio >= 0, window > 0, minPerSecond >= 0",
			ratio, window, minPerSecond))
	}
	return optionFunc(func(c *config) {
		c.budget, c.ratio, c.window, c.minPerSecond = true, ratio, window, minPerSecond
	})
}

// WithoutRetryBudget switches the retry budget off: every retryable failure is
// retried up to WithMaxAttempts. Only advisable when another layer (a circuit
// breaker, a server-side budget) bounds the load retries add.
func WithoutRetryBudget() Option {
	return optionFunc(func(c *config) { c.budget = false })
}

// WithMaxRetryAfter caps how long a server's Retry-After or RateLimit-Reset
// can make the wait before a retry (default 30 s); 0 ignores them. It caps the
// pushback only, never the backoff. Independently of the cap, a wait that
// would end after the request context's deadline is never started: the
// response is returned at once instead. d must not be negative.
func WithMaxRetryAfter(d time.Duration) Option {
	if d < 0 {
		panic(fmt.Sprintf("retry: WithMaxRetryAfter(%v): d must not be negative", d))
	}
	return optionFunc(func(c *config) { c.maxRetryAfter = d })
}

// WithIdempotencyKeys puts an Idempotency-Key header on every POST and PATCH
// request that carries none, which makes the call retryable: a random UUID
// per call, as an sf-string (`"8e03978e-..."`, draft-ietf-httpapi-idempotency-key-header
// §2), the same key on every attempt of the call, so the server sees one
// operation however often it arrives. A key the caller set is never replaced,
// and with or without this option a request that carries one is retried like
// an idempotent one.
//
// Only POST and PATCH get a key: they are the methods the draft is for. The
// idempotent methods of RFC 9110 §9.2.2 (GET, HEAD, OPTIONS, TRACE, PUT,
// DELETE) need none, CONNECT cannot be repeated, and what another method
// means is not known here: a caller that knows its server deduplicates it
// sets the key itself.
//
// Default: off. A server that does not honour the header processes every
// attempt that reaches it, so a POST reset after the server did the work
// would be done twice; turn it on for upstreams that deduplicate by key (as
// Stripe's API and chaos.WithIdempotency do).
func WithIdempotencyKeys() Option {
	return optionFunc(func(c *config) { c.idemKey = true })
}

// WithIdempotencyKey is the former name of WithIdempotencyKeys. It also put a
// key on methods other than POST and PATCH that are not idempotent; it now
// does exactly what WithIdempotencyKeys does.
//
// Deprecated: use WithIdempotencyKeys.
func WithIdempotencyKey() Option { return WithIdempotencyKeys() }

// WithWaitForBreaker makes a call whose attempt is refused by an open circuit
// breaker below (circuit.OpenError) wait for the breaker's next probe instead
// of failing at once, when that probe falls before the request context's
// deadline (with 10 ms to spare for the attempt). One probe releases every
// waiting call: while the breaker is open the waiters sleep until the probe
// may go, one of them (or any other request) is let through as the probe and
// the others, refused as half-open, wait for its outcome without sending
// anything. When the probe succeeds the breaker closes and the waiters send
// their attempts, which pass the breaker like any request and are metered by
// the rate and concurrency limits below; when it fails, each waiter waits for
// the next probe if that still fits in its deadline, and otherwise gets the
// refusal (or the response kept from an earlier attempt) at once. A call whose
// deadline cannot reach the probe fails at once, as without the option, and
// the caller's context ends every wait.
//
// The refused attempt was not sent: it does not count against WithMaxAttempts
// or the retry budget, and is sent again with the same attempt number. Its
// body must be rewindable (GetBody, or no body), or the call fails at once.
// A call without a deadline waits for one probe's outcome at most. Default:
// off; outbound.DefaultConfig turns it on (docs/circuit.md has the drills).
func WithWaitForBreaker() Option {
	return optionFunc(func(c *config) { c.waitBreaker = true })
}

// WithBufferBodies lets requests whose body has no GetBody be retried by
// buffering the body in memory, up to limit bytes. A longer body is streamed
// and sent exactly once. Default: off — such bodies are sent once, since
// buffering whole bodies (as go-retryablehttp does) costs memory that GetBody
// avoids. limit must be positive.
func WithBufferBodies(limit int64) Option {
	if limit <= 0 {
		panic(fmt.Sprintf("retry: WithBufferBodies(%d): limit must be positive", limit))
	}
	return optionFunc(func(c *config) { c.bufferLimit = limit })
}

// WithResponseBuffer reads a response body of at most n bytes inside the
// attempt, before RoundTrip returns, so that a body that stalls, is reset or
// ends short is a failed attempt, retried like a timeout or a reset before
// the headers, rather than an error the caller meets while reading. The
// caller gets an in-memory body with the same bytes, the same headers and
// trailers, and ContentLength as the upstream declared it (-1 stays -1). A
// body fits when its declared length is at most n or, undeclared, when it
// ends within n bytes. Default: DefaultResponseBuffer (64 KiB); 0 turns it
// off. n must not be negative.
//
// The read is bounded by the body idle timeout of the layers below
// (base.WithBodyIdleTimeout) and by the caller's context, and each wait for a
// byte by half the time left before the caller's deadline (while that still
// leaves room for the backoff and another attempt), so a stalled body leaves
// time for another attempt; a body that trickles but keeps coming is read to
// the end. A read that fails when no retry is allowed is the call's *Error,
// wrapping the read error; the partial body is closed, never returned.
//
// Nothing is held back that a caller may want as it arrives: a body longer
// than n is handed on as the bytes read so far followed by the rest from the
// wire; text/event-stream, application/x-ndjson, application/jsonl,
// application/json-seq and multipart/x-mixed-replace responses, 1xx
// responses (a 101's body keeps io.Writer), responses without a body and
// requests whose context was marked with Streaming pass through unread. So
// does every attempt whose failed read could not be retried — the last
// attempt, a POST without an Idempotency-Key, a body that cannot be sent
// again — since there the buffer would only delay the response. Memory: at
// most n+1 bytes per attempt in flight (bodies of undeclared length are read
// into pooled buffers of n+1 bytes, then copied out at their own length); an
// in-memory body owns its bytes until the caller drops the response. The
// attempt's resources are released when the caller is done with the body, as
// for any response. docs/retry.md has the details and the drill behind the
// default.
func WithResponseBuffer(n int64) Option {
	if n < 0 {
		panic(fmt.Sprintf("retry: WithResponseBuffer(%d): n must not be negative", n))
	}
	rb := newResponseBuffer(n)
	return optionFunc(func(c *config) { c.respBuffer = rb })
}

// WithAttemptHeader sends the attempt number (0 for the first attempt, 1 for
// the first resend; the number of earlier attempts, like gRPC's
// grpc-previous-rpc-attempts) in the header name on every attempt, so the
// upstream can see resends, as Envoy's x-envoy-attempt-count does. Default: no
// header.
func WithAttemptHeader(name string) Option {
	if !httpguts.ValidHeaderFieldName(name) {
		panic(fmt.Sprintf("retry: WithAttemptHeader(%q): not a valid header field name", name))
	}
	name = http.CanonicalHeaderKey(name)
	return optionFunc(func(c *config) { c.attemptHeader = name })
}

// WithCheckRetry decides which outcomes are retried with a go-retryablehttp
// policy, such as retryablehttp.DefaultRetryPolicy, instead of WithStatuses and
// the built-in error classes. Only its boolean is used; a RoundTripper must
// return the response it got, so the policy's error is not returned. The rules
// of this package still apply around it: the idempotency gate, the body rules,
// the retry budget, the deadline, the caller's context and LocalRefusal errors.
// f must not read or close the response body (go-retryablehttp lets policies
// close it): the Transport returns that response or drains it itself. A nil f
// restores the built-in policy.
func WithCheckRetry(f retryablehttp.CheckRetry) Option {
	return optionFunc(func(c *config) { c.checkRetry = f })
}

// WithBackoffFunc computes the wait before each retry with a go-retryablehttp
// Backoff, such as retryablehttp.DefaultBackoff, called with the WithBackoff
// bounds as min and max, the number of the failed attempt (0 for the first) and
// its response (nil after an error). Pushback headers and WithMaxRetryAfter
// still apply to its result. A nil f restores equal-jitter backoff.
func WithBackoffFunc(f retryablehttp.Backoff) Option {
	return optionFunc(func(c *config) { c.backoffFunc = f })
}

// WithKey sets how requests are grouped into upstreams for the retry
// budget. Default: "scheme://host:port". A nil f restores the default.
func WithKey(f func(*http.Request) string) Option {
	return optionFunc(func(c *config) { c.keyFunc = f })
}

// WithMaxKeys bounds the number of upstreams whose retry budget is kept
// (default 1024); the least recently used is forgotten first, and starts with a
// fresh budget when seen again. n must be at least 1.
func WithMaxKeys(n int) Option {
	if n < 1 {
		panic(fmt.Sprintf("retry: WithMaxKeys(%d): n must be at least 1", n))
	}
	return optionFunc(func(c *config) { c.maxKeys = n })
}
