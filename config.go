package outbound

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"golang.org/x/net/http/httpguts"

	"github.com/outboundhttp/outbound/transport/base"
	"github.com/outboundhttp/outbound/transport/budget"
	"github.com/outboundhttp/outbound/transport/circuit"
	"github.com/outboundhttp/outbound/transport/hedge"
	"github.com/outboundhttp/outbound/transport/ratelimit"
	"github.com/outboundhttp/outbound/transport/requestid"
	"github.com/outboundhttp/outbound/transport/retry"
)

// Defaults of the standard stack that belong to no single layer.
const (
	// DefaultUserAgent is the User-Agent the header layer sends when the
	// caller set none.
	DefaultUserAgent = "outbound/1"
	// DefaultMaxConcurrency is the ceiling of the adaptive concurrency limit
	// per upstream: the reference article's pool of 100 connections, so the
	// limit never asks for more connections than the pool holds.
	DefaultMaxConcurrency = base.DefaultMaxConnsPerHost
	// DefaultHedgeDelay is hedge.DefaultMinDelay (1 ms): hedging is on in
	// the standard stack, with the hedge package's default: once after each
	// upstream's recent p95 (at most 4 medians, at least 1 ms), never to a
	// saturated upstream nor for ratelimit.PauseAftermath after a pause it
	// asked for, never while the first attempt's answer waits unread in its
	// socket, and only from the spare half of the retry budget. Issue 16's
	// rule, on only if it loses no drill: the latency drill's p99 goes from
	// 8.1 s to 85 ms, and every other drill ties (24 rounds of the 429-burst
	// drill under -race: 0 impolite requests). docs/hedge.md, "The default".
	// HEDGE_DELAY=0 turns hedging off.
	DefaultHedgeDelay time.Duration = hedge.DefaultMinDelay
)

// Secret is a string that never shows in formatted output: String, GoString,
// Format and MarshalText all give "[REDACTED]" (or "" when it is empty), so a
// Config can be logged with %v or %+v without leaking the API key.
type Secret string

const redacted = "[REDACTED]"

// String returns "[REDACTED]", or "" for an empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString returns the redacted form, for %#v.
func (s Secret) GoString() string { return fmt.Sprintf("%q", s.String()) }

// Format prints the redacted form for every verb.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' || (verb == 'v' && f.Flag('#')) {
		fmt.Fprintf(f, "%q", s.String())
		return
	}
	fmt.Fprint(f, s.String())
}

// MarshalText gives the redacted form, so encoding a Config never leaks it.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the secret itself, for the one place that must send it.
func (s Secret) Reveal() string { return string(s) }

// Config holds the settings of the standard stack, typed and loadable from
// the environment (LoadConfig), like the reference article's ApiClientSettings.
// The zero Config is not valid; start from DefaultConfig. The env tags name
// each variable without the prefix given to LoadConfig.
type Config struct {
	// Base transport (NewTransport).
	ConnectTimeout        time.Duration `env:"CONNECT_TIMEOUT"`
	TLSHandshakeTimeout   time.Duration `env:"TLS_HANDSHAKE_TIMEOUT"`
	ResponseHeaderTimeout time.Duration `env:"RESPONSE_HEADER_TIMEOUT"`
	ExpectContinueTimeout time.Duration `env:"EXPECT_CONTINUE_TIMEOUT"`
	WriteTimeout          time.Duration `env:"WRITE_TIMEOUT"` // request body makes no progress; 0 disables
	IdleConnTimeout       time.Duration `env:"IDLE_CONN_TIMEOUT"`
	BodyIdleTimeout       time.Duration `env:"BODY_IDLE_TIMEOUT"` // 0 disables
	MaxConnsPerHost       int           `env:"MAX_CONNS_PER_HOST"`
	MaxIdleConnsPerHost   int           `env:"MAX_IDLE_CONNS_PER_HOST"`
	HTTP2                 bool          `env:"HTTP2"`

	// Headers (transport/header). APIKey is sent as "Authorization: Bearer".
	UserAgent string `env:"USER_AGENT"`
	APIKey    Secret `env:"API_KEY"`

	// Request IDs (transport/requestid).
	RequestIDHeader string `env:"REQUEST_ID_HEADER"`

	// Total time budget per call (transport/budget). DeadlineHeader, when not
	// empty, sends the remaining budget to the upstream on every attempt.
	TotalBudget    time.Duration `env:"TOTAL_BUDGET"`
	DeadlineHeader string        `env:"DEADLINE_HEADER"`

	// Retries (transport/retry). MaxAttempts counts the first attempt;
	// 1 turns retries off. AttemptTimeout 0 means no per-attempt bound.
	// RetryBudgetRatio 0 turns the retry budget off. MaxRetryAfter caps both
	// the retry layer's wait for a Retry-After and the rate limiter's pause of
	// the upstream (ratelimit.WithMaxPushback); 0 ignores Retry-After.
	MaxAttempts      int           `env:"MAX_ATTEMPTS"`
	BackoffInitial   time.Duration `env:"BACKOFF_INITIAL"`
	BackoffMax       time.Duration `env:"BACKOFF_MAX"`
	AttemptTimeout   time.Duration `env:"ATTEMPT_TIMEOUT"`
	MaxRetryAfter    time.Duration `env:"MAX_RETRY_AFTER"`
	RetryBudgetRatio float64       `env:"RETRY_BUDGET_RATIO"`
	RetryStatuses    []int         `env:"RETRY_STATUSES"`
	// AttemptHeader, when not empty, sends the attempt number (0 for the
	// first) to the upstream on every attempt, as Envoy's
	// x-envoy-attempt-count and gRPC's grpc-previous-rpc-attempts do.
	AttemptHeader string `env:"ATTEMPT_HEADER"`
	// ResponseBuffer, in bytes, reads a response body of at most this size
	// inside the attempt, so a body that stalls, is reset or ends short is
	// retried like any failed attempt (retry.WithResponseBuffer); streams and
	// longer bodies pass through as they arrive. 0 turns it off.
	ResponseBuffer int64 `env:"RESPONSE_BUFFER"`
	// IdempotencyKeys puts an Idempotency-Key (a UUID per call, the same on
	// every attempt) on every POST and PATCH that carries none, so that they
	// are retried like idempotent requests (retry.WithIdempotencyKeys). Off
	// by default: only an upstream that deduplicates by key makes it safe.
	IdempotencyKeys bool `env:"IDEMPOTENCY_KEYS"`

	// Hedging (transport/hedge): an attempt that has not answered after the
	// delay gets a copy, and whichever answers first wins; hedges spend the
	// retry budget. HedgeDelay 0 turns hedging off. With HedgeQuantile in
	// (0, 1) the delay is the upstream's recent latency at that quantile
	// (hedge.WithQuantile) and HedgeDelay its floor; HedgeQuantile 0 makes
	// HedgeDelay a fixed delay for every upstream (hedge.WithDelay alone).
	// On by default (DefaultHedgeDelay, 1 ms, with HedgeQuantile 0.95: the
	// hedge package's default, after each upstream's p95); HEDGE_DELAY=0
	// turns it off.
	HedgeDelay    time.Duration `env:"HEDGE_DELAY"`
	HedgeQuantile float64       `env:"HEDGE_QUANTILE"`

	// Limits (transport/ratelimit). RatePerSecond 0 means no rate limit.
	// With AdaptiveConcurrency the number of requests in flight per upstream
	// follows the upstream's latency and overload signals between
	// MinConcurrency and MaxConcurrency (docs/overload.md); without it,
	// MaxConcurrency is a fixed limit and 0 means none. Requests beyond the
	// limit wait in a FIFO queue for at most QueueTimeout; QueueLength only
	// bounds its memory.
	RatePerSecond       float64       `env:"RATE_PER_SECOND"`
	RateBurst           int           `env:"RATE_BURST"`
	AdaptiveConcurrency bool          `env:"ADAPTIVE_CONCURRENCY"`
	MinConcurrency      int           `env:"MIN_CONCURRENCY"`
	MaxConcurrency      int           `env:"MAX_CONCURRENCY"`
	QueueLength         int           `env:"QUEUE_LENGTH"`
	QueueTimeout        time.Duration `env:"QUEUE_TIMEOUT"`

	// Circuit breaker (transport/circuit).
	CircuitEnabled       bool          `env:"CIRCUIT_ENABLED"`
	CircuitFailureRatio  float64       `env:"CIRCUIT_FAILURE_RATIO"`
	CircuitMinRequests   int           `env:"CIRCUIT_MIN_REQUESTS"`
	CircuitWindow        time.Duration `env:"CIRCUIT_WINDOW"`
	CircuitBreakDuration time.Duration `env:"CIRCUIT_BREAK_DURATION"`
	// WaitForBreaker makes a call refused by an open breaker wait for the
	// breaker's next probe, when its budget reaches it, instead of failing at
	// once (retry.WithWaitForBreaker): one probe releases every waiting call.
	// On by default (docs/circuit.md, "Recovery").
	WaitForBreaker bool `env:"WAIT_FOR_BREAKER"`

	// Telemetry (transport/tracing).
	TracingEnabled bool `env:"TRACING_ENABLED"`
}

// DefaultConfig returns the documented defaults (docs/defaults.md): the
// reference article's timeouts and pool limits, a 10 s budget, 4 attempts
// with equal-jitter backoff from 200 ms to 3 s, a 20 % retry budget, an
// adaptive concurrency limit per upstream between 4 and 100 with a 2 s queue
// wait, a breaker for upstreams that are down, one hedge after each
// upstream's recent p95 latency, and tracing
// through the global OpenTelemetry providers.
func DefaultConfig() Config {
	return Config{
		ConnectTimeout:        DefaultConnectTimeout,
		TLSHandshakeTimeout:   DefaultTLSHandshakeTimeout,
		ResponseHeaderTimeout: base.DefaultResponseHeaderTimeout,
		ExpectContinueTimeout: base.DefaultExpectContinueTimeout,
		WriteTimeout:          DefaultWriteTimeout,
		IdleConnTimeout:       DefaultIdleConnTimeout,
		BodyIdleTimeout:       DefaultBodyIdleTimeout,
		MaxConnsPerHost:       DefaultMaxConnsPerHost,
		MaxIdleConnsPerHost:   DefaultMaxIdleConnsPerHost,
		HTTP2:                 true,

		UserAgent:       DefaultUserAgent,
		RequestIDHeader: requestid.DefaultHeader,

		TotalBudget: budget.DefaultTotal,

		MaxAttempts:      retry.DefaultMaxAttempts,
		BackoffInitial:   retry.DefaultInitial,
		BackoffMax:       retry.DefaultMaxBackoff,
		MaxRetryAfter:    retry.DefaultMaxRetryAfter,
		RetryBudgetRatio: retry.DefaultRetryBudgetRatio,
		RetryStatuses:    retry.DefaultStatuses(),
		ResponseBuffer:   retry.DefaultResponseBuffer,

		HedgeDelay:    DefaultHedgeDelay,
		HedgeQuantile: hedge.DefaultQuantile,

		AdaptiveConcurrency: true,
		MinConcurrency:      ratelimit.DefaultMinConcurrency,
		MaxConcurrency:      DefaultMaxConcurrency,
		QueueLength:         ratelimit.DefaultQueue,
		QueueTimeout:        ratelimit.DefaultQueueTimeout,

		CircuitEnabled:       true,
		CircuitFailureRatio:  circuit.DefaultFailureRatio,
		CircuitMinRequests:   circuit.DefaultMinRequests,
		CircuitWindow:        circuit.DefaultWindow,
		CircuitBreakDuration: circuit.DefaultBreakDuration,
		WaitForBreaker:       true,

		TracingEnabled: true,
	}
}

// String formats the Config with the API key redacted.
func (c Config) String() string {
	type plain Config // no String method: avoids recursion; Secret still redacts itself
	return fmt.Sprintf("%+v", plain(c))
}

// LoadConfig returns DefaultConfig overridden by the environment variables
// named by Config's env tags with prefix in front (for example with prefix
// "APP_": APP_CONNECT_TIMEOUT=2s, APP_API_KEY=...). Durations use Go syntax
// ("250ms", "2s"), lists are comma-separated. An invalid value gives an error
// naming the variable and the problem, never the API key's value. The result
// is validated (see Validate).
func LoadConfig(prefix string) (Config, error) {
	cfg := DefaultConfig()
	if err := env.ParseWithOptions(&cfg, env.Options{Prefix: prefix}); err != nil {
		return Config{}, configEnvError(prefix, err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, withVariableNames(prefix, err)
	}
	return cfg, nil
}

// fieldWord matches a word that may be a Config field name.
var fieldWord = regexp.MustCompile(`\b[A-Z][A-Za-z0-9]*\b`)

// withVariableNames rewrites the Config field names in Validate's problems
// as the environment variables that set them ("MaxAttempts must be at least
// 1" becomes "APP_MAX_ATTEMPTS must be at least 1"): whoever configured the
// service through the environment knows the variables, not the Go fields.
func withVariableNames(prefix string, err error) error {
	var ce *ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	t := reflect.TypeOf(Config{})
	vars := make(map[string]string, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		if tag := strings.Split(t.Field(i).Tag.Get("env"), ",")[0]; tag != "" {
			vars[t.Field(i).Name] = prefix + tag
		}
	}
	out := &ConfigError{Problems: make([]string, len(ce.Problems))}
	for i, p := range ce.Problems {
		out.Problems[i] = fieldWord.ReplaceAllStringFunc(p, func(w string) string {
			if v, ok := vars[w]; ok {
				return v
			}
			return w
		})
	}
	return out
}

// configEnvError rewrites env's errors, which name the Go field, to name the
// environment variable, and drops the value of secret fields.
func configEnvError(prefix string, err error) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return fmt.Errorf("outbound: config: %w", err)
	}
	t := reflect.TypeOf(Config{})
	var msgs []string
	for _, e := range agg.Errors {
		var pe env.ParseError
		if !errors.As(e, &pe) {
			msgs = append(msgs, e.Error())
			continue
		}
		name := pe.Name
		secret := false
		if f, ok := t.FieldByName(pe.Name); ok {
			name = prefix + strings.Split(f.Tag.Get("env"), ",")[0]
			secret = f.Type == reflect.TypeOf(Secret(""))
		}
		if secret {
			msgs = append(msgs, name+": invalid value")
		} else {
			msgs = append(msgs, fmt.Sprintf("%s: %v", name, pe.Err))
		}
	}
	return fmt.Errorf("outbound: config: %s", strings.Join(msgs, "; "))
}

// ConfigError lists every problem Validate found.
type ConfigError struct {
	Problems []string
}

// Error lists the problems on one line.
func (e *ConfigError) Error() string {
	return "outbound: invalid config: " + strings.Join(e.Problems, "; ")
}

// Validate reports every problem of c at once, as a *ConfigError: negative
// durations, zero limits, and the cross-field rules of .NET's standard
// resilience handler that a stack needs to make sense — the attempt timeout
// must not exceed the total budget, the sum of the longest backoff waits must
// fit in the budget, and the breaker's window must be at least twice the
// attempt timeout (so one slow attempt cannot fill it).
func (c Config) Validate() error {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	c.validateDurations(add)
	c.validatePool(add)
	c.validateHeaders(add)
	c.validateRetries(add)
	c.validateHedge(add)
	c.validateLimits(add)
	c.validateCircuit(add)
	c.validateFitsBudget(add)
	if len(p) > 0 {
		return &ConfigError{Problems: p}
	}
	return nil
}

// validateDurations reports negative durations and a total budget too short
// to send anything.
func (c Config) validateDurations(add func(format string, args ...any)) {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"ConnectTimeout", c.ConnectTimeout},
		{"TLSHandshakeTimeout", c.TLSHandshakeTimeout},
		{"ResponseHeaderTimeout", c.ResponseHeaderTimeout},
		{"ExpectContinueTimeout", c.ExpectContinueTimeout},
		{"WriteTimeout", c.WriteTimeout},
		{"IdleConnTimeout", c.IdleConnTimeout},
		{"BodyIdleTimeout", c.BodyIdleTimeout},
		{"AttemptTimeout", c.AttemptTimeout},
		{"MaxRetryAfter", c.MaxRetryAfter},
		{"QueueTimeout", c.QueueTimeout},
		{"BackoffInitial", c.BackoffInitial},
		{"BackoffMax", c.BackoffMax},
		{"HedgeDelay", c.HedgeDelay},
	} {
		if d.v < 0 {
			add("%s must not be negative (got %v)", d.name, d.v)
		}
	}
	if c.TotalBudget <= budget.DefaultMinRemaining {
		// Below the budget layer's minimum every call would be refused unsent.
		add("TotalBudget must be more than %v (got %v)", budget.DefaultMinRemaining, c.TotalBudget)
	}
}

// validatePool checks the connection pool of the base transport.
func (c Config) validatePool(add func(format string, args ...any)) {
	if c.MaxConnsPerHost < 1 {
		add("MaxConnsPerHost must be at least 1 (got %d)", c.MaxConnsPerHost)
	}
	if c.MaxIdleConnsPerHost < 1 {
		add("MaxIdleConnsPerHost must be at least 1 (got %d)", c.MaxIdleConnsPerHost)
	}
	if c.MaxIdleConnsPerHost > c.MaxConnsPerHost && c.MaxConnsPerHost >= 1 {
		add("MaxIdleConnsPerHost (%d) must not exceed MaxConnsPerHost (%d)", c.MaxIdleConnsPerHost, c.MaxConnsPerHost)
	}
}

// validateHeaders checks the header names and values the layers send.
func (c Config) validateHeaders(add func(format string, args ...any)) {
	// The header values and names are checked here, where a bad value from
	// the environment is reported with every other problem, rather than by the
	// layers' options, which panic on them (programmer errors there).
	if !httpguts.ValidHeaderFieldName(c.RequestIDHeader) {
		add("RequestIDHeader %q is not a valid header field name", c.RequestIDHeader)
	}
	if c.DeadlineHeader != "" && !httpguts.ValidHeaderFieldName(c.DeadlineHeader) {
		add("DeadlineHeader %q is not a valid header field name", c.DeadlineHeader)
	}
	if c.AttemptHeader != "" && !httpguts.ValidHeaderFieldName(c.AttemptHeader) {
		add("AttemptHeader %q is not a valid header field name", c.AttemptHeader)
	}
	if c.UserAgent != "" && !httpguts.ValidHeaderFieldValue(c.UserAgent) {
		add("UserAgent %q is not a valid header value", c.UserAgent)
	}
	if k := c.APIKey.Reveal(); k != "" && (!httpguts.ValidHeaderFieldValue(k) || strings.ContainsAny(k, " \t")) {
		// Never quote the key itself, not even a bad one.
		add("APIKey is not a valid bearer token: it holds spaces or control characters")
	}
}

// validateRetries checks attempts, backoff, the retry budget and the retried statuses.
func (c Config) validateRetries(add func(format string, args ...any)) {
	if c.MaxAttempts < 1 {
		add("MaxAttempts must be at least 1 (got %d)", c.MaxAttempts)
	}
	if c.BackoffMax < c.BackoffInitial {
		add("BackoffMax (%v) must not be less than BackoffInitial (%v)", c.BackoffMax, c.BackoffInitial)
	}
	// Written as !(in range) so NaN, for which every comparison is false, is
	// reported instead of silently turning the feature off.
	if !(c.RetryBudgetRatio >= 0 && c.RetryBudgetRatio <= 1) {
		add("RetryBudgetRatio must be within [0, 1] (got %v)", c.RetryBudgetRatio)
	}
	for _, s := range c.RetryStatuses {
		if s < 100 || s > 599 {
			add("RetryStatuses: %d is not an HTTP status", s)
		}
	}
	if c.ResponseBuffer < 0 {
		add("ResponseBuffer must not be negative (got %d)", c.ResponseBuffer)
	}
}

// validateHedge checks the hedge quantile (HedgeDelay is checked with the
// other durations).
func (c Config) validateHedge(add func(format string, args ...any)) {
	// !(in range) so that NaN is reported too.
	if !(c.HedgeQuantile == 0 || (c.HedgeQuantile > 0 && c.HedgeQuantile < 1)) {
		add("HedgeQuantile must be within (0, 1), or 0 for a fixed HedgeDelay (got %v)", c.HedgeQuantile)
	}
}

// validateLimits checks the rate limit and the fixed or adaptive concurrency limit.
func (c Config) validateLimits(add func(format string, args ...any)) {
	if !(c.RatePerSecond >= 0) || math.IsInf(c.RatePerSecond, 0) {
		add("RatePerSecond must be a finite number, 0 or more (got %v)", c.RatePerSecond)
	}
	if c.RatePerSecond > 0 && c.RateBurst < 1 {
		add("RateBurst must be at least 1 when RatePerSecond is set (got %d)", c.RateBurst)
	}
	if c.MaxConcurrency < 0 {
		add("MaxConcurrency must not be negative (got %d)", c.MaxConcurrency)
	}
	if c.AdaptiveConcurrency {
		if c.MaxConcurrency < 1 {
			add("MaxConcurrency must be at least 1 with AdaptiveConcurrency: it is the adaptive limit's ceiling (got %d)", c.MaxConcurrency)
		}
		if c.MinConcurrency < 1 {
			add("MinConcurrency must be at least 1 with AdaptiveConcurrency (got %d)", c.MinConcurrency)
		}
		if c.MinConcurrency > c.MaxConcurrency && c.MaxConcurrency >= 1 {
			add("MinConcurrency (%d) must not exceed MaxConcurrency (%d)", c.MinConcurrency, c.MaxConcurrency)
		}
	}
	if c.MaxConcurrency > 0 && c.QueueTimeout <= 0 {
		add("QueueTimeout must be positive when MaxConcurrency is set (got %v)", c.QueueTimeout)
	}
	if c.QueueLength < 0 {
		add("QueueLength must not be negative (got %d)", c.QueueLength)
	}
}

// validateCircuit checks the breaker, when it is on.
func (c Config) validateCircuit(add func(format string, args ...any)) {
	if c.CircuitEnabled {
		if !(c.CircuitFailureRatio > 0 && c.CircuitFailureRatio <= 1) {
			add("CircuitFailureRatio must be within (0, 1] (got %v)", c.CircuitFailureRatio)
		}
		if c.CircuitMinRequests < 1 {
			add("CircuitMinRequests must be at least 1 (got %d)", c.CircuitMinRequests)
		}
		if c.CircuitWindow <= 0 {
			add("CircuitWindow must be positive (got %v)", c.CircuitWindow)
		}
		if c.CircuitBreakDuration <= 0 {
			add("CircuitBreakDuration must be positive (got %v)", c.CircuitBreakDuration)
		}
		if c.AttemptTimeout > 0 && c.CircuitWindow < 2*c.AttemptTimeout {
			add("CircuitWindow (%v) must be at least twice AttemptTimeout (%v)", c.CircuitWindow, c.AttemptTimeout)
		}
	}
}

// validateFitsBudget applies .NET's cross-field rules: the attempt timeout and the longest
// backoff waits must fit in the total budget.
func (c Config) validateFitsBudget(add func(format string, args ...any)) {
	if c.TotalBudget > 0 {
		if c.AttemptTimeout > c.TotalBudget {
			add("AttemptTimeout (%v) must not exceed TotalBudget (%v)", c.AttemptTimeout, c.TotalBudget)
		}
		if w := c.maxBackoffTotal(); c.MaxAttempts >= 1 && w > c.TotalBudget {
			add("the longest backoff waits of %d attempts add up to %v, more than TotalBudget (%v)", c.MaxAttempts, w, c.TotalBudget)
		}
	}
}

// maxBackoffTotal is the sum of the longest waits between MaxAttempts
// attempts: min(BackoffMax, BackoffInitial·2^n) for n = 0 .. MaxAttempts-2.
func (c Config) maxBackoffTotal() time.Duration {
	var total time.Duration
	step := c.BackoffInitial
	for n := 0; n < c.MaxAttempts-1; n++ {
		w := step
		if w > c.BackoffMax || w <= 0 {
			w = c.BackoffMax
		}
		total += w
		if total > c.TotalBudget {
			break // already too long; a huge MaxAttempts must not loop for long
		}
		if step < c.BackoffMax {
			step *= 2
		}
	}
	return total
}
