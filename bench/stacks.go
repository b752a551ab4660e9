// Package bench measures outbound against the libraries users would pick
// instead — hashicorp/go-retryablehttp, failsafe-go's failsafehttp and otelhttp —
// on the same work, in one run: the cost of each stack on the success path
// (overhead benchmarks over an in-memory base), keep-alive throughput over
// loopback, what each does to an upstream under failure (the chaos
// comparison in chaos_test.go), and what each makes of an overloaded
// upstream's capacity (the overload drill in overload_test.go).
//
// It is its own Go module so that the main module never depends on the peers.
// Run it with `make bench` from the repository root; docs/perf/peers.md has
// the figures and the commands that produced them.
package bench

import (
	"maps"
	"net/http"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
	"github.com/failsafe-go/failsafe-go/adaptivethrottler"
	fsbudget "github.com/failsafe-go/failsafe-go/budget"
	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/failsafehttp"
	"github.com/failsafe-go/failsafe-go/hedgepolicy"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	"github.com/failsafe-go/failsafe-go/timeout"
	"github.com/google/uuid"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/outboundhttp/outbound"
	"github.com/outboundhttp/outbound/transport/tracing"
)

// The policy every peer is given, the same as outbound.DefaultConfig's, so the
// comparison is of the same work: the reference article's four attempts,
// exponential backoff from 200 ms capped at 3 s, a 10 s budget per call, at
// most 100 requests in flight per upstream.
const (
	Attempts       = 4
	BackoffInitial = 200 * time.Millisecond
	BackoffMax     = 3 * time.Second
	TotalBudget    = 10 * time.Second
	Concurrency    = 100
)

// Limits are the rate limit of the standard stack. The benchmarks use a rate
// that never binds (Unlimited), so they measure the cost of taking a token, not
// the wait for one.
type Limits struct {
	PerSecond float64
	Burst     int
}

// Unlimited is a token bucket too large to ever make a benchmark wait.
var Unlimited = Limits{PerSecond: 1e9, Burst: 1 << 20}

// Config is outbound.DefaultConfig (the article's numbers: 10 s budget, 4
// attempts with full-jitter backoff from 200 ms to 3 s, 20 % retry budget,
// breaker, an adaptive concurrency limit per upstream) with the layers of the
// overhead comparison — request ID, budget, retry, circuit, rate and
// concurrency limits — and no
// others: the token bucket is set to l, and the User-Agent header layer is off
// (no peer sets one; outbound/default-client measures the defaults as they are).
func Config(l Limits, traced bool) outbound.Config {
	cfg := outbound.DefaultConfig()
	cfg.RatePerSecond, cfg.RateBurst = l.PerSecond, l.Burst
	cfg.UserAgent = ""
	cfg.TracingEnabled = traced
	return cfg
}

// Standard is outbound's standard stack without tracing, built by
// outbound.NewClient on base (the order of docs/ordering.md).
func Standard(base http.RoundTripper, l Limits) http.RoundTripper {
	return newClient(Config(l, false), base)
}

// Traced is the standard stack with both tracing layers (logical span outside
// budget, one CLIENT span per attempt just above base), on the given providers.
func Traced(base http.RoundTripper, l Limits, opts ...tracing.Option) http.RoundTripper {
	return newClient(Config(l, true), base, outbound.WithTracingOptions(opts...))
}

// FiveLayers is the standard stack cut to the five layers of issue 18's
// overhead target — request ID, budget, retry, circuit breaker, rate and
// concurrency limits — with DefaultConfig's values: Standard without the
// hedge layer.
func FiveLayers(base http.RoundTripper, l Limits) http.RoundTripper {
	return newClient(Config(l, false), base, outbound.WithoutLayer(outbound.LayerHedge))
}

// Default is outbound.NewClient(outbound.DefaultConfig()) on base, as is:
// the stack a user gets without choosing anything — every layer, the
// User-Agent header, no token bucket, and tracing through the global
// OpenTelemetry providers, which are the no-op ones in this module (nothing
// here installs an SDK globally).
func Default(base http.RoundTripper) http.RoundTripper {
	return newClient(outbound.DefaultConfig(), base)
}

// DefaultClient is Default with tracing off (Config.TracingEnabled false).
func DefaultClient(base http.RoundTripper) http.RoundTripper {
	cfg := outbound.DefaultConfig()
	cfg.TracingEnabled = false
	return newClient(cfg, base)
}

func newClient(cfg outbound.Config, base http.RoundTripper, opts ...outbound.ClientOption) http.RoundTripper {
	c, err := outbound.NewClient(cfg, append(opts, outbound.WithBase(base))...)
	if err != nil {
		panic(err) // a programmer error in this file
	}
	return c.Transport
}

// RetryableHTTP is go-retryablehttp's RoundTripper with the same attempts and
// backoff bounds, and no logger (its default logs every attempt to stderr).
func RetryableHTTP(base http.RoundTripper) http.RoundTripper {
	c := retryablehttp.NewClient()
	c.Logger = nil
	c.RetryMax = Attempts - 1
	c.RetryWaitMin = BackoffInitial
	c.RetryWaitMax = BackoffMax
	c.HTTPClient = &http.Client{Transport: base}
	// Without an ErrorHandler, retryablehttp turns the last failed response
	// into an error ("giving up after N attempt(s)") and throws the response
	// away; PassthroughErrorHandler hands it back, as outbound does.
	c.ErrorHandler = retryablehttp.PassthroughErrorHandler
	return &retryablehttp.RoundTripper{Client: c}
}

// FailsafeRetryPolicy is failsafe-go's HTTP retry policy (retries errors,
// 429 and 5xx except 501; Retry-After in seconds through failsafehttp.DelayFunc)
// with the same attempts, exponential backoff and jitter, returning the last
// response when attempts run out instead of an ExceededError.
func FailsafeRetryPolicy() failsafe.Policy[*http.Response] { return failsafeRetryBuilder().Build() }

// failsafeRetryBuilder is FailsafeRetryPolicy before Build, for a stack that
// adds a budget.
func failsafeRetryBuilder() retrypolicy.Builder[*http.Response] {
	return failsafehttp.NewRetryPolicyBuilder().
		WithMaxAttempts(Attempts).
		WithBackoff(BackoffInitial, BackoffMax).
		WithJitterFactor(0.5).
		ReturnLastFailure()
}

// FailsafeHedgeQuantile is failsafe-go's adaptive hedge delay: the p95 of
// the last 1 000 executions, once 20 have been seen, one hedge per call
// (outbound's default quantile and number of hedges).
func FailsafeHedgeQuantile() hedgepolicy.Builder[*http.Response] {
	return hedgepolicy.NewBuilderWithDelayQuantile[*http.Response](0.95, 1000, 20)
}

// FailsafeBreaker is failsafe-go's circuit breaker set like outbound's: open
// when at least half of at least 20 executions in 30 s failed (errors and 5xx),
// stay open 5 s, one probe.
func FailsafeBreaker() failsafe.Policy[*http.Response] {
	return circuitbreaker.NewBuilder[*http.Response]().
		HandleIf(func(resp *http.Response, err error) bool {
			return err != nil || (resp != nil && resp.StatusCode >= 500)
		}).
		WithFailureRateThreshold(0.5, 20, 30*time.Second).
		WithDelay(5 * time.Second).
		Build()
}

// FailsafeRetry is failsafehttp with the retry policy alone.
func FailsafeRetry(base http.RoundTripper) http.RoundTripper {
	return failsafehttp.NewRoundTripper(base, FailsafeRetryPolicy())
}

// FailsafeFull is failsafehttp with retry, circuit breaker and bulkhead (a
// concurrency limit), the policies that match outbound's stack. The first
// policy is the outermost, so every attempt passes the breaker and the
// bulkhead, as in outbound's order.
func FailsafeFull(base http.RoundTripper) http.RoundTripper {
	return failsafehttp.NewRoundTripper(base, FailsafeRetryPolicy(), FailsafeBreaker(), failsafeBulkhead())
}

// failsafeBulkhead is failsafe-go's fixed concurrency limit at outbound's
// ceiling, with outbound's 2 s wait for a slot.
func failsafeBulkhead() failsafe.Policy[*http.Response] {
	return bulkhead.NewBuilder[*http.Response](Concurrency).WithMaxWaitTime(2 * time.Second).Build()
}

// FailsafeAdaptiveLimiter is failsafe-go's adaptive concurrency limiter in the
// configuration its documentation gives for an overloaded upstream: queueing
// when the limit is reached (WithQueueing with the factors BuildPrioritized
// defaults to, queue up to twice the limit and reject gradually up to three
// times it), a wait of at most 2 s for a permit (outbound's, and the
// article's, pool timeout) and outbound's ceiling of Concurrency; its
// defaults otherwise (minimum 1, initial limit 20, p90 of recent execution
// times against a baseline). Without queueing it rejects every execution
// above the limit at once. Each call builds a new limiter.
func FailsafeAdaptiveLimiter() adaptivelimiter.AdaptiveLimiter[*http.Response] {
	return adaptivelimiter.NewBuilder[*http.Response]().
		WithLimits(1, Concurrency, 20).
		WithQueueing(2, 3).
		WithMaxWaitTime(2 * time.Second).
		Build()
}

// FailsafeAdaptiveThrottler is failsafe-go's client-side throttler (the Google
// SRE book's "client-side throttling") with its documented defaults (throttling
// begins when more than 10 % of the executions of the last minute failed, and
// rejects at most 90 %), counting as failures the errors and the 429 and 5xx
// answers: by default it counts errors only, and an overloaded upstream's 503s
// reach an HTTP client as responses. Each call builds a new throttler.
func FailsafeAdaptiveThrottler() adaptivethrottler.AdaptiveThrottler[*http.Response] {
	return adaptivethrottler.NewBuilder[*http.Response]().
		HandleIf(func(resp *http.Response, err error) bool {
			return err != nil || (resp != nil &&
				(resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500))
		}).
		Build()
}

// FailsafeLimited is failsafehttp with the retry policy outermost and an
// adaptive concurrency limiter (FailsafeAdaptiveLimiter) around every attempt.
func FailsafeLimited(base http.RoundTripper) http.RoundTripper {
	return failsafehttp.NewRoundTripper(base, FailsafeRetryPolicy(), FailsafeAdaptiveLimiter())
}

// FailsafeThrottled is failsafehttp with the retry policy outermost and the
// client-side throttler (FailsafeAdaptiveThrottler) around every attempt.
func FailsafeThrottled(base http.RoundTripper) http.RoundTripper {
	return failsafehttp.NewRoundTripper(base, FailsafeRetryPolicy(), FailsafeAdaptiveThrottler())
}

// HeaderCopy is the least a RoundTripper that adds one header can do without
// changing the caller's request (the RoundTripper contract): a shallow copy
// of the request and a copy of its header map with one more key, a constant
// X-Request-ID. It generates nothing and keeps no state, so its row in the
// overhead table is the floor under any request-ID layer, outbound's or one a
// peer's user writes.
func HeaderCopy(base http.RoundTripper) http.RoundTripper {
	return headerRoundTripper{next: base, id: func() string { return "0a8e89e5-474d-4eb7-a54d-0a631376bb75" }}
}

// FailsafeAsDefault is failsafe-go doing the work of
// NewClient(DefaultConfig()) without tracing: a RoundTripper in front that
// sends a new UUID as X-Request-ID and outbound's User-Agent, as a
// failsafe-go user writes it (uuid.NewString); then, in outbound's order, a
// timeout of the total budget, retry and hedging at the p95 of recent
// latencies (FailsafeHedgeQuantile) spending one budget of 20 % of in-flight
// executions (failsafe-go's budget at its default rate, as outbound's 20 %
// retry budget), the circuit breaker, and FailsafeFull's bulkhead.
//
// The concurrency limit is the bulkhead, whose 2 s wait binds as outbound's
// queue timeout does, and not FailsafeAdaptiveLimiter: over keep-alive
// loopback at 64 callers that limiter refuses calls ("limit exceeded", from
// its initial limit of 20 and a queue of at most 3 times the limit), and a
// stack that refuses calls has no throughput to compare
// (docs/performance.md, "The same work").
func FailsafeAsDefault(base http.RoundTripper) http.RoundTripper {
	shared := fsbudget.New()
	rt := failsafehttp.NewRoundTripper(base,
		timeout.New[*http.Response](TotalBudget),
		failsafeRetryBuilder().WithBudget(shared).Build(),
		FailsafeHedgeQuantile().WithBudget(shared).Build(),
		FailsafeBreaker(),
		failsafeBulkhead())
	return headerRoundTripper{next: rt, id: uuid.NewString, userAgent: outbound.DefaultUserAgent}
}

// headerRoundTripper sets X-Request-ID (and User-Agent, when set) on a copy
// of each request.
type headerRoundTripper struct {
	next      http.RoundTripper
	id        func() string
	userAgent string
}

func (h headerRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	r2 := *req
	r2.Header = maps.Clone(req.Header) // the new keys replace no caller's slice
	if r2.Header == nil {
		r2.Header = http.Header{}
	}
	r2.Header["X-Request-Id"] = []string{h.id()}
	if h.userAgent != "" {
		r2.Header["User-Agent"] = []string{h.userAgent}
	}
	return h.next.RoundTrip(&r2)
}
