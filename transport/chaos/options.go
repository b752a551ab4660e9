package chaos

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/outboundhttp/outbound/internal/clock"
)

// sleeper is how a Transport or Server waits: injected latency, a capacity's
// work and trickle pauses. It is internal/clock.Sleep, a real timer, which a
// testing/synctest bubble makes virtual; fault windows read time.Now. Tests
// replace it only where a bubble cannot help: to make every timer fire late,
// as on a busy machine, or to count the waits running at once.
type sleeper func(ctx context.Context, d time.Duration) error

// Option configures a Transport or a Server. Options apply in order, after
// the defaults; a later option overrides an earlier one.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	faults          []Fault
	seed            int64
	sleep           sleeper
	handler         http.Handler
	requestIDHeader string
	attemptHeader   string
	idempotencyKeys int // WithIdempotency: keys remembered; 0 off
}

func newConfig(opts []Option) config {
	c := config{
		sleep:           clock.Sleep,
		requestIDHeader: "X-Request-ID",
		attemptHeader:   "X-Attempt",
	}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

// WithScenario adds s's faults and sets the seed to s.Seed.
func WithScenario(s Scenario) Option {
	return optionFunc(func(c *config) {
		c.faults = append(c.faults, s.Faults...)
		c.seed = s.Seed
	})
}

// WithFaults adds faults, evaluated after those already added.
func WithFaults(f ...Fault) Option {
	return optionFunc(func(c *config) { c.faults = append(c.faults, f...) })
}

// WithSeed seeds the fault generator. Default 0: unseeded runs are
// reproducible too.
func WithSeed(seed int64) Option {
	return optionFunc(func(c *config) { c.seed = seed })
}

// WithHandler sets the Server's healthy answer, given when no fault decides
// the answer (its body is still subject to Stall and Trickle). Default: 200
// with the body {"status":"ok"}. The handler's output is buffered before it
// is sent, so it must not stream. A nil handler is ignored. Server only.
func WithHandler(h http.Handler) Option {
	return optionFunc(func(c *config) {
		if h != nil {
			c.handler = h
		}
	})
}

// WithRequestIDHeader names the header the Server records as the request ID.
// Default "X-Request-ID". Server only.
func WithRequestIDHeader(name string) Option {
	return optionFunc(func(c *config) {
		if name != "" {
			c.requestIDHeader = name
		}
	})
}

// WithAttemptHeader names the header the Server records as the attempt
// number (for example the one outbound's retry layer sends with its own
// WithAttemptHeader). Default "X-Attempt". Server only.
func WithAttemptHeader(name string) Option {
	return optionFunc(func(c *config) {
		if name != "" {
			c.attemptHeader = name
		}
	})
}

// WithIdempotency makes the Server honour the Idempotency-Key header
// (draft-ietf-httpapi-idempotency-key-header) as Stripe's API does: the first
// request with a key is processed and its answer stored; a later request with
// the same key gets the stored answer, with the header Idempotent-Replayed:
// true, without being processed again (Record.KeyOutcome says which). A
// request whose key is still being processed gets 409 Conflict; one whose key
// came with a different method, path or body gets 422. A reset or a hang
// fault fires after the work is done and stored (the case keys are for);
// an injected status, a shed 503 or a client that left first leaves the key
// unused. Faults still apply to every delivery, replays included.
//
// The Server remembers DefaultMaxIdempotencyKeys keys (10 000), forgetting
// the oldest first; WithMaxIdempotencyKeys sets another bound. Default: keys
// are ignored and every request is processed. Server only.
func WithIdempotency() Option { return WithMaxIdempotencyKeys(DefaultMaxIdempotencyKeys) }

// WithMaxIdempotencyKeys is WithIdempotency remembering at most n keys, so
// the stored answers take at most n times the size of an answer. It panics
// if n < 1. Server only.
func WithMaxIdempotencyKeys(n int) Option {
	if n < 1 {
		panic(fmt.Sprintf("chaos: WithMaxIdempotencyKeys(%d): n must be at least 1", n))
	}
	return optionFunc(func(c *config) { c.idempotencyKeys = n })
}
