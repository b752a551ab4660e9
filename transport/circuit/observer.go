package circuit

// Observer receives what the breakers do, for metrics and logs. Every field is
// optional; a nil field is not called.
//
// Observer is a struct of functions, like net/http/httptrace.ClientTrace and
// the Observer types of the retry and ratelimit packages, so that fields can
// be added later without breaking callers.
type Observer struct {
	// StateChange is called whenever the breaker of key changes state. It
	// runs while that breaker is locked: it must be quick and must not call
	// back into the Transport (State would deadlock). The move from Open to
	// HalfOpen happens lazily, when the first request after the break
	// duration arrives, so that is when it is reported. It has no context:
	// the change belongs to the upstream, not to the request that tripped it.
	StateChange func(key string, from, to State)
}

// WithObserver sets the functions that receive what the breakers do.
// Default: none.
func WithObserver(o Observer) Option {
	return optionFunc(func(c *config) { c.obs = o })
}

// WithOnStateChange registers f as Observer.StateChange. A nil f is ignored.
//
// Deprecated: use WithObserver(Observer{StateChange: ...}), the shape every
// package of outbound observes with; WithOnStateChange remains for one
// release.
func WithOnStateChange(f func(key string, from, to State)) Option {
	return optionFunc(func(c *config) {
		if f != nil {
			c.obs.StateChange = f
		}
	})
}
