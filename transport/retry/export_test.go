package retry

import (
	"context"
	"time"
)

// WithClock replaces the clock and the wait function (test hook).
func WithClock(now func() time.Time, sleep func(context.Context, time.Duration) error) Option {
	return optionFunc(func(c *config) { c.now, c.sleep = now, sleep })
}

// WithRand replaces the random source of the jitter (test hook); f(n) must be in [0, n).
func WithRand(f func(n int64) int64) Option {
	return optionFunc(func(c *config) { c.randN = f })
}
