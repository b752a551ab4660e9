package outbound

import (
	"context"
	"fmt"
	"net/http"

	"github.com/outboundhttp/outbound/transport/base"
	"github.com/outboundhttp/outbound/transport/budget"
	"github.com/outboundhttp/outbound/transport/circuit"
	"github.com/outboundhttp/outbound/transport/header"
	"github.com/outboundhttp/outbound/transport/hedge"
	"github.com/outboundhttp/outbound/transport/ratelimit"
	"github.com/outboundhttp/outbound/transport/requestid"
	"github.com/outboundhttp/outbound/transport/retry"
	"github.com/outboundhttp/outbound/transport/tracing"
)

// Layer names one layer of the standard stack, for the ClientOptions that
// drop, replace or add to it. The constants are in the stack's order,
// outermost first (docs/ordering.md explains the order).
type Layer int

// The layers of the standard stack, outermost first.
const (
	LayerRequestID      Layer = iota // transport/requestid
	LayerTracing                     // transport/tracing: logical span
	LayerBudget                      // transport/budget: total time budget
	LayerRetry                       // transport/retry
	LayerHedge                       // transport/hedge: a second attempt when the first is slow
	LayerDeadline                    // transport/budget: remaining budget on the wire, per attempt
	LayerHeader                      // transport/header: User-Agent and API key, per attempt
	LayerCircuit                     // transport/circuit
	LayerRateLimit                   // transport/ratelimit
	LayerAttemptTracing              // transport/tracing: one CLIENT span per attempt
	numLayers
)

var layerNames = [numLayers]string{"requestid", "tracing", "budget", "retry", "hedge", "deadline", "header", "circuit", "ratelimit", "attempt-tracing"}

// String returns the layer's name.
func (l Layer) String() string {
	if l < 0 || l >= numLayers {
		return fmt.Sprintf("Layer(%d)", int(l))
	}
	return layerNames[l]
}

// ClientOption changes how NewClient builds the stack.
type ClientOption interface{ applyClient(*clientConfig) }

type clientOptionFunc func(*clientConfig)

func (f clientOptionFunc) applyClient(c *clientConfig) { f(c) }

type clientConfig struct {
	replace map[Layer]Middleware // a nil value drops the layer
	after   map[Layer][]Middleware
	base    http.RoundTripper
	tracing []tracing.Option
	invalid []string
}

func validLayer(c *clientConfig, fn string, l Layer) bool {
	if l < 0 || l >= numLayers {
		c.invalid = append(c.invalid, fmt.Sprintf("%s: unknown layer %d", fn, int(l)))
		return false
	}
	return true
}

// WithoutLayer leaves layer l out of the stack (for example LayerCircuit for
// an upstream whose failures are handled elsewhere).
func WithoutLayer(l Layer) ClientOption {
	return clientOptionFunc(func(c *clientConfig) {
		if validLayer(c, "WithoutLayer", l) {
			c.replace[l] = nil
		}
	})
}

// WithLayer puts mw in place of layer l, for example a rate limit on a
// caller-owned limiter:
//
//	outbound.WithLayer(outbound.LayerRateLimit, ratelimit.Middleware(ratelimit.WithTokenBucket(shared)))
//
// A nil mw drops the layer, as WithoutLayer does.
func WithLayer(l Layer, mw Middleware) ClientOption {
	return clientOptionFunc(func(c *clientConfig) {
		if validLayer(c, "WithLayer", l) {
			c.replace[l] = mw
		}
	})
}

// WithMiddlewareAfter adds mw just inside layer l (between l and the next
// layer); several calls for one layer add in the order given. Use it, for
// example, to add per-attempt request signing after LayerHeader.
func WithMiddlewareAfter(l Layer, mw Middleware) ClientOption {
	return clientOptionFunc(func(c *clientConfig) {
		if validLayer(c, "WithMiddlewareAfter", l) && mw != nil {
			c.after[l] = append(c.after[l], mw)
		}
	})
}

// WithBase uses rt as the base RoundTripper instead of one built by
// NewTransport from the Config's timeouts and pool limits.
func WithBase(rt http.RoundTripper) ClientOption {
	return clientOptionFunc(func(c *clientConfig) { c.base = rt })
}

// WithTracingOptions passes options (providers, propagators) to both tracing
// layers and to the breaker's state-change metrics.
func WithTracingOptions(opts ...tracing.Option) ClientOption {
	return clientOptionFunc(func(c *clientConfig) { c.tracing = append(c.tracing, opts...) })
}

// NewClient validates cfg (every problem reported at once, see
// Config.Validate) and builds the standard stack on a tuned base transport (package transport/base),
// in the order of docs/ordering.md: request ID, logical span, total budget,
// retries, hedges, remaining budget on the wire, headers, circuit breaker, rate and
// concurrency limits, one span per attempt, base transport. Every value comes
// from cfg; options drop, replace or add layers.
//
// The client has no Timeout of its own: the budget layer bounds the whole
// call, retries and body included. Call CloseIdleConnections on it when done.
func NewClient(cfg Config, opts ...ClientOption) (*http.Client, error) {
	cc := clientConfig{replace: map[Layer]Middleware{}, after: map[Layer][]Middleware{}}
	for _, o := range opts {
		if o != nil {
			o.applyClient(&cc)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(cc.invalid) > 0 {
		return nil, &ConfigError{Problems: cc.invalid}
	}

	layers := cfg.layers(cc.tracing)
	var mws []Middleware
	for l := Layer(0); l < numLayers; l++ {
		mw := layers[l]
		if r, ok := cc.replace[l]; ok {
			mw = r
		}
		mws = append(mws, mw)
		mws = append(mws, cc.after[l]...)
	}
	base := cc.base
	if base == nil {
		base = cfg.newBase()
	}
	return &http.Client{Transport: Chain(base, mws...)}, nil
}

// newBase builds the base transport from cfg.
func (c Config) newBase() http.RoundTripper {
	opts := []base.Option{
		base.WithConnectTimeout(c.ConnectTimeout),
		base.WithTLSHandshakeTimeout(c.TLSHandshakeTimeout),
		base.WithResponseHeaderTimeout(c.ResponseHeaderTimeout),
		base.WithExpectContinueTimeout(c.ExpectContinueTimeout),
		base.WithWriteTimeout(c.WriteTimeout),
		base.WithIdleConnTimeout(c.IdleConnTimeout),
		base.WithBodyIdleTimeout(c.BodyIdleTimeout),
		base.WithMaxConnsPerHost(c.MaxConnsPerHost),
		base.WithMaxIdleConnsPerHost(c.MaxIdleConnsPerHost),
		base.WithHTTP2(c.HTTP2),
	}
	if c.MaxIdleConnsPerHost > base.DefaultMaxIdleConns {
		opts = append(opts, base.WithMaxIdleConns(c.MaxIdleConnsPerHost))
	}
	return base.New(opts...)
}

// layers returns the default middleware of every layer for c (nil where c
// turns a layer off).
func (c Config) layers(tracingOpts []tracing.Option) [numLayers]Middleware {
	var l [numLayers]Middleware
	l[LayerRequestID] = requestid.Middleware(requestid.WithHeader(c.RequestIDHeader))
	l[LayerBudget] = budget.Middleware(budget.WithTotal(c.TotalBudget))
	if c.DeadlineHeader != "" {
		l[LayerDeadline] = budget.DeadlineMiddleware(budget.WithDeadlineHeader(c.DeadlineHeader))
	}

	retryOpts := []retry.Option{
		retry.WithMaxAttempts(c.MaxAttempts),
		retry.WithBackoff(c.BackoffInitial, c.BackoffMax),
		retry.WithMaxRetryAfter(c.MaxRetryAfter),
		retry.WithStatuses(c.RetryStatuses...),
		retry.WithResponseBuffer(c.ResponseBuffer),
	}
	if c.AttemptHeader != "" {
		retryOpts = append(retryOpts, retry.WithAttemptHeader(c.AttemptHeader))
	}
	if c.AttemptTimeout > 0 {
		retryOpts = append(retryOpts, retry.WithAttemptTimeout(c.AttemptTimeout))
	}
	if c.IdempotencyKeys {
		retryOpts = append(retryOpts, retry.WithIdempotencyKeys())
	}
	waitForBreaker := c.WaitForBreaker && c.CircuitEnabled
	if waitForBreaker {
		retryOpts = append(retryOpts, retry.WithWaitForBreaker())
	}
	if c.RetryBudgetRatio > 0 {
		retryOpts = append(retryOpts, retry.WithRetryBudget(c.RetryBudgetRatio, retry.DefaultRetryBudgetWindow, retry.DefaultRetryBudgetMinPerSecond))
	} else {
		retryOpts = append(retryOpts, retry.WithoutRetryBudget())
	}
	// With one attempt the layer is still needed for what it does per
	// attempt: the attempt timeout, the attempt header, the idempotency key
	// and the wait for the breaker's probe.
	if c.MaxAttempts > 1 || c.AttemptTimeout > 0 || c.AttemptHeader != "" || c.IdempotencyKeys || waitForBreaker {
		l[LayerRetry] = retry.Middleware(retryOpts...)
	}

	// Just below retry, with nothing in between: the retry layer then shares
	// its per-upstream budget with the hedges (hedge.Transport.SpendsRetryBudget).
	// Every layer below meters each hedge like any attempt.
	if c.HedgeDelay > 0 {
		hedgeOpts := []hedge.Option{hedge.WithDelay(c.HedgeDelay)}
		if c.HedgeQuantile > 0 {
			hedgeOpts = append(hedgeOpts, hedge.WithQuantile(c.HedgeQuantile))
		}
		l[LayerHedge] = hedge.Middleware(hedgeOpts...)
	}

	var headerOpts []header.Option
	if c.UserAgent != "" {
		headerOpts = append(headerOpts, header.WithHeader("User-Agent", c.UserAgent))
	}
	if c.APIKey != "" {
		headerOpts = append(headerOpts, header.WithBearerToken(c.APIKey.Reveal()))
	}
	if len(headerOpts) > 0 {
		l[LayerHeader] = header.Middleware(headerOpts...)
	}

	if c.CircuitEnabled {
		circuitOpts := []circuit.Option{
			circuit.WithFailureRatio(c.CircuitFailureRatio),
			circuit.WithMinRequests(c.CircuitMinRequests),
			circuit.WithWindow(c.CircuitWindow),
			circuit.WithBreakDuration(c.CircuitBreakDuration),
		}
		if c.TracingEnabled {
			observe := tracing.CircuitObserver(tracingOpts...)
			circuitOpts = append(circuitOpts, circuit.WithObserver(circuit.Observer{
				StateChange: func(key string, from, to circuit.State) { observe(key, from.String(), to.String()) },
			}))
		}
		l[LayerCircuit] = circuit.Middleware(circuitOpts...)
	}

	// The limiter pauses an upstream for its Retry-After no longer than the
	// retry layer waits for it: with a longer pause, the limiter would refuse
	// the very retry the retry layer scheduled after its capped wait.
	limitOpts := []ratelimit.Option{ratelimit.WithMaxPushback(c.MaxRetryAfter)}
	if c.RatePerSecond > 0 {
		limitOpts = append(limitOpts, ratelimit.WithRate(c.RatePerSecond, c.RateBurst))
	}
	switch {
	case c.AdaptiveConcurrency:
		limitOpts = append(limitOpts, ratelimit.WithAdaptiveConcurrency(c.MinConcurrency, c.MaxConcurrency))
	case c.MaxConcurrency > 0:
		limitOpts = append(limitOpts, ratelimit.WithConcurrency(c.MaxConcurrency))
	}
	if c.AdaptiveConcurrency || c.MaxConcurrency > 0 {
		limitOpts = append(limitOpts, ratelimit.WithQueue(c.QueueLength), ratelimit.WithQueueTimeout(c.QueueTimeout))
	}
	if c.AdaptiveConcurrency && c.TracingEnabled {
		observe := tracing.ConcurrencyObserver(tracingOpts...)
		limitOpts = append(limitOpts, ratelimit.WithObserver(ratelimit.Observer{
			Concurrency: func(ctx context.Context, key string, s ratelimit.ConcurrencyStats) {
				observe(ctx, key, s.Limit, s.Queued, s.Baseline)
			},
		}))
	}
	// The limiter also honours server pushback (429/503 with Retry-After), so it
	// stays in the stack even with no rate or concurrency limit.
	l[LayerRateLimit] = ratelimit.Middleware(limitOpts...)

	if c.TracingEnabled {
		l[LayerTracing] = tracing.Middleware(tracingOpts...)
		l[LayerAttemptTracing] = tracing.AttemptMiddleware(tracingOpts...)
	}
	return l
}
