package outbound

import (
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outboundhttp/outbound/internal/contracttest"
	"github.com/outboundhttp/outbound/transport/circuit"
)

func TestConfigIdempotencyKeysAndWaitForBreaker(t *testing.T) {
	cfg := DefaultConfig()
	if cfg.IdempotencyKeys || !cfg.WaitForBreaker {
		t.Fatalf("DefaultConfig: IdempotencyKeys %v, WaitForBreaker %v; want off and on", cfg.IdempotencyKeys, cfg.WaitForBreaker)
	}
	t.Setenv("APP_IDEMPOTENCY_KEYS", "true")
	t.Setenv("APP_WAIT_FOR_BREAKER", "false")
	cfg, err := LoadConfig("APP_")
	if err != nil || !cfg.IdempotencyKeys || cfg.WaitForBreaker {
		t.Fatalf("LoadConfig: IdempotencyKeys %v, WaitForBreaker %v, %v; want on and off", cfg.IdempotencyKeys, cfg.WaitForBreaker, err)
	}
	t.Setenv("APP_WAIT_FOR_BREAKER", "sometimes")
	if _, err := LoadConfig("APP_"); err == nil || !strings.Contains(err.Error(), "APP_WAIT_FOR_BREAKER") {
		t.Fatalf("LoadConfig with a bad bool: %v; want the variable named", err)
	}
}

// TestNewClientIdempotencyKeys: with IdempotencyKeys a POST carries a key,
// the same on its retry; without, it is sent once and carries none.
func TestNewClientIdempotencyKeys(t *testing.T) {
	for _, on := range []bool{true, false} {
		b := contracttest.NewGate(503, 200)
		cfg := fastConfig()
		cfg.IdempotencyKeys = on
		c := newTestClient(t, cfg, WithBase(b))
		resp, err := c.Post("http://orders.test/v1/orders", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		keys := b.Header("Idempotency-Key")
		if on && (len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] || resp.StatusCode != 200) {
			t.Errorf("IdempotencyKeys on: keys %q, status %d; want two attempts with one key and the 200", keys, resp.StatusCode)
		}
		if !on && (len(keys) != 1 || keys[0] != "" || resp.StatusCode != 503) {
			t.Errorf("IdempotencyKeys off: keys %q, status %d; want one attempt, no key, the 503", keys, resp.StatusCode)
		}
	}
}

// TestNewClientWaitForBreaker: with DefaultConfig, a call refused by the
// open breaker waits for the probe and gets the recovered upstream's answer;
// with WaitForBreaker off it fails at once. MaxAttempts 1 keeps the wait.
func TestNewClientWaitForBreaker(t *testing.T) {
	for _, tc := range []struct {
		name        string
		wait        bool
		maxAttempts int
	}{
		{"default", true, 4},
		{"one attempt", true, 1},
		{"off", false, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := contracttest.NewGate(503)
				cfg := fastConfig()
				cfg.WaitForBreaker = tc.wait
				cfg.MaxAttempts = tc.maxAttempts
				c, err := NewClient(cfg, WithBase(b))
				if err != nil {
					t.Fatal(err)
				}
				for range 2 * DefaultConfig().CircuitMinRequests { // trips the breaker
					if resp, err := c.Get("http://orders.test/v1"); err == nil {
						resp.Body.Close()
					}
					time.Sleep(10 * time.Millisecond)
				}
				b.Set(200, nil)
				sent := b.Calls()
				start := time.Now()
				resp, err := c.Get("http://orders.test/v1")
				took := time.Since(start)
				if !tc.wait {
					if !errors.Is(err, circuit.ErrOpen) || took != 0 {
						t.Fatalf("got %v after %v; want ErrOpen at once", err, took)
					}
					return
				}
				if err != nil {
					t.Fatalf("got %v after %v; want the answer after the probe", err, took)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 || took <= 0 || took > cfg.CircuitBreakDuration || b.Calls() != sent+1 {
					t.Fatalf("got %d after %v, %d requests sent; want 200 within the break, 1 request", resp.StatusCode, took, b.Calls()-sent)
				}
			})
		})
	}
}
