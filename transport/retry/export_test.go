package retry

// WithRand replaces the random source of the jitter (test hook); f(n) must
// be in [0, n). Tests that assert exact waits draw the ceiling with it; time
// itself is the testing/synctest bubble's clock.
func WithRand(f func(n int64) int64) Option {
	return optionFunc(func(c *config) { c.randN = f })
}
