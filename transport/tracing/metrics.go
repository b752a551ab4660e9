package tracing

import (
	"context"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Attribute keys this package adds to spans, span events and metrics. They
// live in the outbound.* namespace because the semantic conventions have no
// key for them; docs/telemetry.md describes each.
const (
	// AttrRequestID is the request ID of the logical call (set on every span).
	AttrRequestID = attribute.Key("outbound.request.id")
	// AttrAttempts is the number of attempts of the logical call.
	AttrAttempts = attribute.Key("outbound.attempts")
	// AttrAttempt is the attempt number an event refers to (1 = first resend).
	AttrAttempt = attribute.Key("outbound.attempt")
	// AttrDelay is the wait an event announces or reports, in seconds.
	AttrDelay = attribute.Key("outbound.delay")
	// AttrReason is the low-cardinality reason of an event ("status_503", "budget", "rate").
	AttrReason = attribute.Key("outbound.reason")
	// AttrUpstream is the upstream key of a keyed layer ("https://api.example.com:443").
	AttrUpstream = attribute.Key("outbound.upstream")
	// AttrStatusClass is the outcome class of a call: "1xx" to "5xx", or "error".
	AttrStatusClass = attribute.Key("outbound.status_class")
	// AttrStatusCode is the status code of the final response of a logical call.
	AttrStatusCode = attribute.Key("outbound.response.status_code")
	// AttrAttemptType says why an attempt was sent: "original", "retry" or
	// "hedge" (gRPC A96's attempt_type); set on every attempt span.
	AttrAttemptType = attribute.Key("outbound.attempt.type")
	// AttrCircuitFrom and AttrCircuitTo are the states of a breaker transition.
	AttrCircuitFrom = attribute.Key("outbound.circuit.from")
	AttrCircuitTo   = attribute.Key("outbound.circuit.to")
)

// Metric names; see docs/telemetry.md.
const (
	MetricCallAttempts        = "outbound.call.attempts"
	MetricCallDuration        = "outbound.call.duration"
	MetricRetries             = "outbound.retries"
	MetricRetryRefusals       = "outbound.retry.refusals"
	MetricBudgetExhausted     = "outbound.budget.exhausted"
	MetricRateLimitWait       = "outbound.ratelimit.wait.duration"
	MetricRateLimitRejections = "outbound.ratelimit.rejections"
	MetricRateLimitFallbacks  = "outbound.ratelimit.fallbacks"
	MetricCircuitRejections   = "outbound.circuit.rejections"
	MetricCircuitTransitions  = "outbound.circuit.state_changes"
	MetricHedges              = "outbound.hedges"
	MetricHedgeWins           = "outbound.hedge.wins"
	MetricHedgeSuppressed     = "outbound.hedge.suppressed"
	MetricInFlight            = "outbound.requests.in_flight"
	MetricConcurrencyLimit    = "outbound.concurrency.limit"
	MetricConcurrencyQueued   = "outbound.concurrency.queued"
	MetricConcurrencyBaseline = "outbound.concurrency.baseline"
)

// durationBuckets returns otelhttp's boundaries for http.client.request.duration,
// so call and attempt durations can be compared bucket for bucket.
func durationBuckets() []float64 {
	return []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}
}

type instruments struct {
	attempts        metric.Int64Histogram
	duration        metric.Float64Histogram
	retries         metric.Int64Counter
	retryRefusals   metric.Int64Counter
	budgetExhausted metric.Int64Counter
	rlWait          metric.Float64Histogram
	rlRejections    metric.Int64Counter
	rlFallbacks     metric.Int64Counter
	cbRejections    metric.Int64Counter
	cbTransitions   metric.Int64Counter
	hedges          metric.Int64Counter
	hedgeWins       metric.Int64Counter
	hedgeSuppressed metric.Int64Counter
	inFlight        metric.Int64UpDownCounter
}

func newInstruments(mp metric.MeterProvider) *instruments {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(ScopeName)
	nm := noop.Meter{}
	ins := &instruments{}
	// An SDK returns a usable instrument together with an error only for
	// invalid names or units, which these are not; fall back to no-op so a
	// broken provider can never fail a request.
	var err error
	if ins.attempts, err = m.Int64Histogram(MetricCallAttempts,
		metric.WithUnit("{attempt}"),
		metric.WithDescription("Attempts made per logical call, the first one included."),
		metric.WithExplicitBucketBoundaries(1, 2, 3, 4, 5, 6, 8, 10)); err != nil {
		ins.attempts, _ = nm.Int64Histogram(MetricCallAttempts)
	}
	if ins.duration, err = m.Float64Histogram(MetricCallDuration,
		metric.WithUnit("s"),
		metric.WithDescription("Duration of logical calls, all attempts and waits included, until the response headers of the last attempt."),
		metric.WithExplicitBucketBoundaries(durationBuckets()...)); err != nil {
		ins.duration, _ = nm.Float64Histogram(MetricCallDuration)
	}
	if ins.retries, err = m.Int64Counter(MetricRetries,
		metric.WithUnit("{retry}"),
		metric.WithDescription("Retries scheduled, by the reason the previous attempt failed.")); err != nil {
		ins.retries, _ = nm.Int64Counter(MetricRetries)
	}
	if ins.retryRefusals, err = m.Int64Counter(MetricRetryRefusals,
		metric.WithUnit("{refusal}"),
		metric.WithDescription("Failed attempts that were not retried, by reason (budget, deadline, attempts, ...).")); err != nil {
		ins.retryRefusals, _ = nm.Int64Counter(MetricRetryRefusals)
	}
	if ins.budgetExhausted, err = m.Int64Counter(MetricBudgetExhausted,
		metric.WithUnit("{call}"),
		metric.WithDescription("Calls whose total time budget ran out.")); err != nil {
		ins.budgetExhausted, _ = nm.Int64Counter(MetricBudgetExhausted)
	}
	if ins.rlWait, err = m.Float64Histogram(MetricRateLimitWait,
		metric.WithUnit("s"),
		metric.WithDescription("Time attempts waited for a rate-limit token, a concurrency slot or the end of server pushback."),
		metric.WithExplicitBucketBoundaries(durationBuckets()...)); err != nil {
		ins.rlWait, _ = nm.Float64Histogram(MetricRateLimitWait)
	}
	if ins.rlRejections, err = m.Int64Counter(MetricRateLimitRejections,
		metric.WithUnit("{request}"),
		metric.WithDescription("Attempts refused by a rate or concurrency limit, by limit.")); err != nil {
		ins.rlRejections, _ = nm.Int64Counter(MetricRateLimitRejections)
	}
	if ins.rlFallbacks, err = m.Int64Counter(MetricRateLimitFallbacks,
		metric.WithUnit("{request}"),
		metric.WithDescription("Attempts a shared rate limit decided locally because its store could not be reached (degraded mode).")); err != nil {
		ins.rlFallbacks, _ = nm.Int64Counter(MetricRateLimitFallbacks)
	}
	if ins.cbRejections, err = m.Int64Counter(MetricCircuitRejections,
		metric.WithUnit("{request}"),
		metric.WithDescription("Attempts refused because the circuit breaker of the upstream was open.")); err != nil {
		ins.cbRejections, _ = nm.Int64Counter(MetricCircuitRejections)
	}
	if ins.cbTransitions, err = m.Int64Counter(MetricCircuitTransitions,
		metric.WithUnit("{change}"),
		metric.WithDescription("Circuit breaker state changes, by upstream and states.")); err != nil {
		ins.cbTransitions, _ = nm.Int64Counter(MetricCircuitTransitions)
	}
	if ins.hedges, err = m.Int64Counter(MetricHedges,
		metric.WithUnit("{hedge}"),
		metric.WithDescription("Hedges sent: extra attempts sent while an earlier one had not answered.")); err != nil {
		ins.hedges, _ = nm.Int64Counter(MetricHedges)
	}
	if ins.hedgeWins, err = m.Int64Counter(MetricHedgeWins,
		metric.WithUnit("{call}"),
		metric.WithDescription("Hedged calls answered, by the attempt that won (original or hedge).")); err != nil {
		ins.hedgeWins, _ = nm.Int64Counter(MetricHedgeWins)
	}
	if ins.hedgeSuppressed, err = m.Int64Counter(MetricHedgeSuppressed,
		metric.WithUnit("{hedge}"),
		metric.WithDescription("Hedges that were due but not sent, by reason (budget).")); err != nil {
		ins.hedgeSuppressed, _ = nm.Int64Counter(MetricHedgeSuppressed)
	}
	if ins.inFlight, err = m.Int64UpDownCounter(MetricInFlight,
		metric.WithUnit("{request}"),
		metric.WithDescription("Attempts sent and not finished: counted until the response body is closed or read to the end.")); err != nil {
		ins.inFlight, _ = nm.Int64UpDownCounter(MetricInFlight)
	}
	return ins
}

// callMetricsEnabled reports whether any per-call instrument records.
func (ins *instruments) callMetricsEnabled(ctx context.Context) bool {
	return ins.attempts.Enabled(ctx) || ins.duration.Enabled(ctx) || ins.retries.Enabled(ctx) ||
		ins.retryRefusals.Enabled(ctx) || ins.budgetExhausted.Enabled(ctx) || ins.rlWait.Enabled(ctx) ||
		ins.rlRejections.Enabled(ctx) || ins.rlFallbacks.Enabled(ctx) || ins.cbRejections.Enabled(ctx) ||
		ins.hedges.Enabled(ctx) || ins.hedgeWins.Enabled(ctx) || ins.hedgeSuppressed.Enabled(ctx)
}

// CircuitObserver returns a function that records a circuit breaker state
// change in the outbound.circuit.state_changes counter, with the upstream key
// and the two states as attributes. Wire it to the circuit package's
// state-change hook, passing each State's String(); the root package's
// NewClient does so. The returned function is safe for concurrent use.
// Only WithMeterProvider concerns it.
func CircuitObserver(opts ...Option) func(key, from, to string) {
	c := newConfig(opts)
	ins := newInstruments(c.mp)
	return func(key, from, to string) {
		ctx := context.Background()
		if !ins.cbTransitions.Enabled(ctx) {
			return
		}
		ins.cbTransitions.Add(ctx, 1, metric.WithAttributes(
			AttrUpstream.String(key), AttrCircuitFrom.String(from), AttrCircuitTo.String(to)))
	}
}

// ConcurrencyObserver returns a function that records the state of an
// adaptive concurrency limit in three gauges, with the upstream key as
// attribute: outbound.concurrency.limit (requests allowed in flight),
// outbound.concurrency.queued (requests waiting for a slot) and
// outbound.concurrency.baseline (the upstream's latency without queueing, in
// seconds). Wire it to the ratelimit package's Observer.Concurrency, passing
// the fields of its ConcurrencyStats; the root package's NewClient does so.
// The returned function is safe for concurrent use. Only WithMeterProvider
// concerns it.
func ConcurrencyObserver(opts ...Option) func(ctx context.Context, key string, limit, queued int, baseline time.Duration) {
	c := newConfig(opts)
	mp := c.mp
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(ScopeName)
	nm := noop.Meter{}
	limitG, err := m.Int64Gauge(MetricConcurrencyLimit, metric.WithUnit("{request}"),
		metric.WithDescription("Requests allowed in flight per upstream by the adaptive concurrency limit."))
	if err != nil {
		limitG, _ = nm.Int64Gauge(MetricConcurrencyLimit)
	}
	queuedG, err := m.Int64Gauge(MetricConcurrencyQueued, metric.WithUnit("{request}"),
		metric.WithDescription("Requests waiting for a concurrency slot per upstream."))
	if err != nil {
		queuedG, _ = nm.Int64Gauge(MetricConcurrencyQueued)
	}
	baselineG, err := m.Float64Gauge(MetricConcurrencyBaseline, metric.WithUnit("s"),
		metric.WithDescription("Latency of the upstream without queueing, as the adaptive concurrency limit last measured it."))
	if err != nil {
		baselineG, _ = nm.Float64Gauge(MetricConcurrencyBaseline)
	}
	return func(ctx context.Context, key string, limit, queued int, baseline time.Duration) {
		if !limitG.Enabled(ctx) && !queuedG.Enabled(ctx) && !baselineG.Enabled(ctx) {
			return
		}
		attrs := metric.WithAttributes(AttrUpstream.String(key))
		limitG.Record(ctx, int64(limit), attrs)
		queuedG.Record(ctx, int64(queued), attrs)
		baselineG.Record(ctx, baseline.Seconds(), attrs)
	}
}

// methodAttr bounds http.request.method to the methods the semantic
// conventions know; anything else is "_OTHER", as they require, so a client
// sending arbitrary methods cannot blow up metric cardinality.
func methodAttr(m string) attribute.KeyValue {
	switch m {
	case http.MethodGet:
		return semconv.HTTPRequestMethodGet
	case http.MethodPost:
		return semconv.HTTPRequestMethodPost
	case http.MethodPut:
		return semconv.HTTPRequestMethodPut
	case http.MethodDelete:
		return semconv.HTTPRequestMethodDelete
	case http.MethodHead:
		return semconv.HTTPRequestMethodHead
	case http.MethodPatch:
		return semconv.HTTPRequestMethodPatch
	case http.MethodOptions:
		return semconv.HTTPRequestMethodOptions
	case http.MethodConnect:
		return semconv.HTTPRequestMethodConnect
	case http.MethodTrace:
		return semconv.HTTPRequestMethodTrace
	case "":
		return semconv.HTTPRequestMethodGet // net/http: "" means GET
	}
	return semconv.HTTPRequestMethodOther
}

// serverAddr is the host of the request without port or userinfo.
func serverAddr(req *http.Request) attribute.KeyValue {
	if req.URL == nil {
		return semconv.ServerAddress("")
	}
	h := req.URL.Hostname()
	if h == "" {
		h = req.Host
		if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
			h = h[:i]
		}
	}
	return semconv.ServerAddress(h)
}

// statusClass maps a final outcome to a bounded value.
func statusClass(code int, err error) string {
	if err != nil || code < 100 || code > 599 {
		return "error"
	}
	return [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}[code/100-1]
}
