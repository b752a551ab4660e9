package outbound

import (
	"errors"
	"strings"
	"testing"
)

// fuzzKeyMarker starts every API key FuzzLoadConfig tries, so the check that
// no error shows the key cannot be fooled by a key that happens to be a word
// of the error message.
const fuzzKeyMarker = "SK-FUZZ-"

// FuzzLoadConfig loads a Config from environment variables holding arbitrary
// values and builds a client from it. Whatever the values: LoadConfig and
// NewClient never panic; every error names at least one of the variables
// (with its prefix); no error shows the API key; and a Config that LoadConfig
// accepts, NewClient accepts too — a bad value is reported when the
// configuration is loaded, not discovered as a panic when the client is built.
func FuzzLoadConfig(f *testing.F) {
	f.Add("2s", "4", "429,503", "0.2", "10s", "key-123", "outbound/1", "X-Request-ID", "")
	f.Add("soon", "many", "429,x", "1.5", "-1s", "key with space", "agent\r\nX-Evil: 1", "bad header", "Request-Timeout-Ms")
	f.Add("", "0", "", "", "0s", "", "", "", "")
	f.Add("1h", "1000000", "99,600", "-0.1", "1ns", "\x7f", "\x00", "X-ID:", "bad name")
	f.Add("9223372036854775807ns", "9223372036854775808", ",,,", "NaN", "300000h", "k\tk", "ua", "X-Request-ID", "X-Deadline")
	f.Fuzz(func(t *testing.T, connect, attempts, statuses, ratio, budget, apiKey, userAgent, requestIDHeader, deadlineHeader string) {
		vars := map[string]string{
			"FZ_CONNECT_TIMEOUT":    connect,
			"FZ_MAX_ATTEMPTS":       attempts,
			"FZ_RETRY_STATUSES":     statuses,
			"FZ_RETRY_BUDGET_RATIO": ratio,
			"FZ_TOTAL_BUDGET":       budget,
			"FZ_API_KEY":            fuzzKeyMarker + apiKey,
			"FZ_USER_AGENT":         userAgent,
			"FZ_REQUEST_ID_HEADER":  requestIDHeader,
			"FZ_DEADLINE_HEADER":    deadlineHeader,
		}
		for k, v := range vars {
			if strings.ContainsRune(v, 0) || (k != "FZ_API_KEY" && strings.Contains(v, fuzzKeyMarker)) {
				t.Skip("the environment cannot hold NUL; other values must not carry the key's marker")
			}
		}
		for k, v := range vars {
			t.Setenv(k, v)
		}
		cfg, err := LoadConfig("FZ_")
		if err != nil {
			msg := err.Error()
			if strings.Contains(msg, fuzzKeyMarker) {
				t.Fatalf("LoadConfig error shows the API key: %v", err)
			}
			if !strings.Contains(msg, "FZ_") {
				t.Fatalf("LoadConfig error names no variable: %v", err)
			}
			var ce *ConfigError
			if errors.As(err, &ce) && len(ce.Problems) == 0 {
				t.Fatalf("ConfigError without problems: %v", err)
			}
			return
		}
		if cfg.APIKey.Reveal() != fuzzKeyMarker+apiKey {
			t.Fatalf("API key changed on loading")
		}
		c, err := NewClient(cfg)
		if err != nil {
			t.Fatalf("LoadConfig accepted a Config that NewClient refuses: %v", err)
		}
		c.CloseIdleConnections()
	})
}
