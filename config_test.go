package outbound

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/outboundhttp/outbound/transport/base"
	"github.com/outboundhttp/outbound/transport/budget"
	"github.com/outboundhttp/outbound/transport/circuit"
	"github.com/outboundhttp/outbound/transport/hedge"
	"github.com/outboundhttp/outbound/transport/ratelimit"
	"github.com/outboundhttp/outbound/transport/requestid"
	"github.com/outboundhttp/outbound/transport/retry"
)

func TestDefaultConfigIsValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v; want nil", err)
	}
}

// TestDefaultConfigUsesPackageDefaults: a default written twice drifts, so
// DefaultConfig takes the packages' own constants.
func TestDefaultConfigUsesPackageDefaults(t *testing.T) {
	cfg := DefaultConfig()
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"ConnectTimeout", cfg.ConnectTimeout, base.DefaultConnectTimeout},
		{"TLSHandshakeTimeout", cfg.TLSHandshakeTimeout, base.DefaultTLSHandshakeTimeout},
		{"ResponseHeaderTimeout", cfg.ResponseHeaderTimeout, base.DefaultResponseHeaderTimeout},
		{"ExpectContinueTimeout", cfg.ExpectContinueTimeout, base.DefaultExpectContinueTimeout},
		{"IdleConnTimeout", cfg.IdleConnTimeout, base.DefaultIdleConnTimeout},
		{"BodyIdleTimeout", cfg.BodyIdleTimeout, base.DefaultBodyIdleTimeout},
		{"WriteTimeout", cfg.WriteTimeout, base.DefaultWriteTimeout},
		{"RequestIDHeader", cfg.RequestIDHeader, requestid.DefaultHeader},
		{"TotalBudget", cfg.TotalBudget, budget.DefaultTotal},
		{"MaxAttempts", cfg.MaxAttempts, retry.DefaultMaxAttempts},
		{"BackoffInitial", cfg.BackoffInitial, retry.DefaultInitial},
		{"BackoffMax", cfg.BackoffMax, retry.DefaultMaxBackoff},
		{"MaxRetryAfter", cfg.MaxRetryAfter, retry.DefaultMaxRetryAfter},
		{"RetryBudgetRatio", cfg.RetryBudgetRatio, retry.DefaultRetryBudgetRatio},
		{"RetryStatuses", fmt.Sprint(cfg.RetryStatuses), fmt.Sprint(retry.DefaultStatuses())},
		{"ResponseBuffer", cfg.ResponseBuffer, retry.DefaultResponseBuffer},
		{"MaxIdleConnsPerHost", cfg.MaxIdleConnsPerHost, base.DefaultMaxIdleConnsPerHost},
		{"MaxConnsPerHost", cfg.MaxConnsPerHost, base.DefaultMaxConnsPerHost},
		{"AdaptiveConcurrency", cfg.AdaptiveConcurrency, true},
		{"MinConcurrency", cfg.MinConcurrency, ratelimit.DefaultMinConcurrency},
		{"QueueLength", cfg.QueueLength, ratelimit.DefaultQueue},
		{"QueueTimeout", cfg.QueueTimeout, ratelimit.DefaultQueueTimeout},
		{"CircuitFailureRatio", cfg.CircuitFailureRatio, circuit.DefaultFailureRatio},
		{"CircuitMinRequests", cfg.CircuitMinRequests, circuit.DefaultMinRequests},
		{"CircuitWindow", cfg.CircuitWindow, circuit.DefaultWindow},
		{"CircuitBreakDuration", cfg.CircuitBreakDuration, circuit.DefaultBreakDuration},
		{"HedgeDelay", cfg.HedgeDelay, DefaultHedgeDelay}, // 1 ms, the p95: see DefaultHedgeDelay
		{"HedgeQuantile", cfg.HedgeQuantile, hedge.DefaultQuantile},
	} {
		if c.got != c.want {
			t.Errorf("DefaultConfig().%s = %v; want the package default %v", c.name, c.got, c.want)
		}
	}
	if cfg.MaxIdleConnsPerHost != cfg.MaxConnsPerHost {
		t.Errorf("idle pool %d per host, %d connections: a burst would redial", cfg.MaxIdleConnsPerHost, cfg.MaxConnsPerHost)
	}
}

func TestLoadConfigAdaptiveConcurrencyFromEnvironment(t *testing.T) {
	t.Setenv("APP_ADAPTIVE_CONCURRENCY", "false")
	t.Setenv("APP_MIN_CONCURRENCY", "2")
	t.Setenv("APP_WRITE_TIMEOUT", "3s")
	cfg, err := LoadConfig("APP_")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AdaptiveConcurrency || cfg.MinConcurrency != 2 || cfg.WriteTimeout != 3*time.Second {
		t.Fatalf("got adaptive %v, min %d, write timeout %v; want false, 2, 3s", cfg.AdaptiveConcurrency, cfg.MinConcurrency, cfg.WriteTimeout)
	}
	t.Setenv("APP_ADAPTIVE_CONCURRENCY", "true")
	t.Setenv("APP_MIN_CONCURRENCY", "200")
	_, err = LoadConfig("APP_")
	if err == nil || !strings.Contains(err.Error(), "APP_MIN_CONCURRENCY (200) must not exceed APP_MAX_CONCURRENCY (100)") {
		t.Fatalf("LoadConfig = %v; want the bounds named by their variables", err)
	}
}

func TestLoadConfigFromEnvironment(t *testing.T) {
	t.Setenv("APP_CONNECT_TIMEOUT", "1500ms")
	t.Setenv("APP_API_KEY", "sk-live-secret-123")
	t.Setenv("APP_MAX_ATTEMPTS", "3")
	t.Setenv("APP_RETRY_STATUSES", "429,503")
	cfg, err := LoadConfig("APP_")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ConnectTimeout != 1500*time.Millisecond || cfg.MaxAttempts != 3 || cfg.APIKey.Reveal() != "sk-live-secret-123" {
		t.Fatalf("got %v; want connect 1.5s, 3 attempts and the key", cfg)
	}
	if fmt.Sprint(cfg.RetryStatuses) != "[429 503]" {
		t.Fatalf("RetryStatuses = %v; want [429 503]", cfg.RetryStatuses)
	}
	// Unset variables keep the defaults.
	if cfg.TotalBudget != 10*time.Second {
		t.Fatalf("TotalBudget = %v; want the 10s default", cfg.TotalBudget)
	}
}

// TestValidateHedge: a quantile outside (0, 1) (NaN included) or a negative
// delay is reported by Validate, named by its variable through LoadConfig;
// 0 is the fixed-delay setting of HedgeQuantile and the off setting of
// HedgeDelay.
func TestValidateHedge(t *testing.T) {
	for _, tc := range []struct {
		delay time.Duration
		q     float64
		want  string // "" for valid
	}{
		{0, 0, ""},
		{0, 0.5, ""},
		{15 * time.Millisecond, 0, ""},
		{time.Millisecond, 0.99, ""},
		{-time.Millisecond, 0.95, "HedgeDelay must not be negative"},
		{time.Millisecond, 1, "HedgeQuantile must be within (0, 1)"},
		{time.Millisecond, -0.1, "HedgeQuantile must be within (0, 1)"},
		{time.Millisecond, math.NaN(), "HedgeQuantile must be within (0, 1)"},
	} {
		cfg := DefaultConfig()
		cfg.HedgeDelay, cfg.HedgeQuantile = tc.delay, tc.q
		err := cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("HedgeDelay %v, HedgeQuantile %v: Validate = %v; want nil", tc.delay, tc.q, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("HedgeDelay %v, HedgeQuantile %v: Validate = %v; want %q", tc.delay, tc.q, err, tc.want)
		}
	}
	t.Setenv("APP_HEDGE_QUANTILE", "1.5")
	t.Setenv("APP_HEDGE_DELAY", "-1ms")
	_, err := LoadConfig("APP_")
	for _, want := range []string{"APP_HEDGE_QUANTILE must be within (0, 1)", "APP_HEDGE_DELAY must not be negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadConfig = %v; want %q", err, want)
		}
	}
	t.Setenv("APP_HEDGE_QUANTILE", "0")
	t.Setenv("APP_HEDGE_DELAY", "15ms")
	cfg, err := LoadConfig("APP_")
	if err != nil || cfg.HedgeDelay != 15*time.Millisecond || cfg.HedgeQuantile != 0 {
		t.Errorf("LoadConfig = %v, %v, %v; want a fixed 15ms hedge delay", cfg.HedgeDelay, cfg.HedgeQuantile, err)
	}
}

func TestLoadConfigResponseBuffer(t *testing.T) {
	t.Setenv("APP_RESPONSE_BUFFER", "1048576")
	cfg, err := LoadConfig("APP_")
	if err != nil || cfg.ResponseBuffer != 1<<20 {
		t.Fatalf("LoadConfig = %d, %v; want ResponseBuffer 1048576", cfg.ResponseBuffer, err)
	}
	t.Setenv("APP_RESPONSE_BUFFER", "-5")
	if _, err := LoadConfig("APP_"); err == nil || !strings.Contains(err.Error(), "APP_RESPONSE_BUFFER must not be negative (got -5)") {
		t.Fatalf("LoadConfig = %v; want the negative buffer named by its variable", err)
	}
}

func TestLoadConfigInvalidValueNamesVariable(t *testing.T) {
	t.Setenv("APP_CONNECT_TIMEOUT", "soon")
	t.Setenv("APP_MAX_ATTEMPTS", "many")
	t.Setenv("APP_API_KEY", "sk-live-secret-123")
	_, err := LoadConfig("APP_")
	if err == nil {
		t.Fatal("LoadConfig accepted invalid values")
	}
	msg := err.Error()
	for _, want := range []string{"APP_CONNECT_TIMEOUT", "soon", "APP_MAX_ATTEMPTS"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, "sk-live-secret-123") {
		t.Errorf("error %q leaks the API key", msg)
	}
}

func TestLoadConfigInvalidCombinationIsValidated(t *testing.T) {
	t.Setenv("APP_ATTEMPT_TIMEOUT", "20s")
	_, err := LoadConfig("APP_")
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v; want *ConfigError", err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ConnectTimeout = -time.Second
	cfg.MaxConnsPerHost = 0
	cfg.MaxAttempts = 0
	cfg.AttemptTimeout = 20 * time.Second // > 10s budget
	cfg.RetryBudgetRatio = 2
	err := cfg.Validate()
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v; want *ConfigError", err)
	}
	for _, want := range []string{"ConnectTimeout", "MaxConnsPerHost", "MaxAttempts", "AttemptTimeout (20s) must not exceed TotalBudget", "RetryBudgetRatio"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if len(ce.Problems) < 5 {
		t.Errorf("got %d problems; want at least 5: %v", len(ce.Problems), ce.Problems)
	}
}

func TestValidateCrossFieldRules(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"backoff sum exceeds budget", func(c *Config) { c.MaxAttempts = 10; c.BackoffMax = 3 * time.Second }, "backoff waits"},
		{"breaker window shorter than two attempts", func(c *Config) { c.AttemptTimeout = 5 * time.Second; c.CircuitWindow = 8 * time.Second }, "CircuitWindow"},
		{"idle above max", func(c *Config) { c.MaxIdleConnsPerHost = 200 }, "MaxIdleConnsPerHost"},
		{"rate without burst", func(c *Config) { c.RatePerSecond = 10; c.RateBurst = 0 }, "RateBurst"},
		{"bad status", func(c *Config) { c.RetryStatuses = []int{42} }, "42"},
		{"zero queue timeout", func(c *Config) { c.QueueTimeout = 0 }, "QueueTimeout must be positive"},
		{"budget below the minimum", func(c *Config) { c.TotalBudget = 10 * time.Millisecond; c.MaxAttempts = 1 }, "TotalBudget must be more than"},
		{"NaN failure ratio", func(c *Config) { c.CircuitFailureRatio = math.NaN() }, "CircuitFailureRatio"},
		{"NaN retry budget", func(c *Config) { c.RetryBudgetRatio = math.NaN() }, "RetryBudgetRatio"},
		{"NaN rate", func(c *Config) { c.RatePerSecond = math.NaN() }, "RatePerSecond"},
		{"bad header name", func(c *Config) { c.AttemptHeader = "X Attempt" }, "AttemptHeader"},
		{"adaptive floor above ceiling", func(c *Config) { c.MinConcurrency = 50; c.MaxConcurrency = 10 }, "MinConcurrency (50) must not exceed MaxConcurrency (10)"},
		{"adaptive floor below one", func(c *Config) { c.MinConcurrency = 0 }, "MinConcurrency must be at least 1"},
		{"adaptive limit without a ceiling", func(c *Config) { c.MaxConcurrency = 0 }, "MaxConcurrency must be at least 1 with AdaptiveConcurrency"},
		{"negative write timeout", func(c *Config) { c.WriteTimeout = -time.Second }, "WriteTimeout must not be negative"},
		{"negative response buffer", func(c *Config) { c.ResponseBuffer = -1 }, "ResponseBuffer must not be negative (got -1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.mutate(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v; want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestHugeMaxAttemptsValidatesQuickly(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxAttempts = 1 << 30
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "backoff waits") {
		t.Fatalf("Validate() = %v; want the backoff-sum problem", err)
	}
}

func TestAPIKeyNeverFormatted(t *testing.T) {
	cfg := DefaultConfig()
	cfg.APIKey = "sk-live-secret-123"
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		for _, v := range []any{cfg, &cfg, cfg.APIKey} {
			if out := fmt.Sprintf(verb, v); strings.Contains(out, "sk-live") {
				t.Errorf("Sprintf(%q, %T) = %q leaks the key", verb, v, out)
			}
		}
	}
	if s := cfg.String(); !strings.Contains(s, "[REDACTED]") {
		t.Errorf("String() = %q; want the key shown as [REDACTED]", s)
	}
	b, _ := cfg.APIKey.MarshalText()
	if strings.Contains(string(b), "sk-live") {
		t.Errorf("MarshalText leaks the key")
	}
	cfg.AttemptTimeout = time.Hour
	if err := cfg.Validate(); err != nil && strings.Contains(err.Error(), "sk-live") {
		t.Errorf("Validate error leaks the key: %v", err)
	}
}

func TestLoadConfigBadHeaderValuesAreConfigErrors(t *testing.T) {
	t.Setenv("APP_API_KEY", "sk-live secret\r\n")
	t.Setenv("APP_USER_AGENT", "agent\r\nX-Evil: 1")
	t.Setenv("APP_REQUEST_ID_HEADER", "X-ID:")
	t.Setenv("APP_DEADLINE_HEADER", "bad name")
	t.Setenv("APP_MAX_ATTEMPTS", "0")
	_, err := LoadConfig("APP_")
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v; want a *ConfigError, not a panic in NewClient later", err)
	}
	for _, want := range []string{"APP_API_KEY", "APP_USER_AGENT", "APP_REQUEST_ID_HEADER", "APP_DEADLINE_HEADER", "APP_MAX_ATTEMPTS must be at least 1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "sk-live") {
		t.Errorf("error %q shows the API key", err)
	}
}
