package retry

import "context"

// Observer receives what the Transport decides, for metrics and logs. Every
// field is optional; a nil field is not called. The functions are called on
// the request path, synchronously and concurrently, and must be quick and safe
// for concurrent use.
//
// Observer is a struct of functions, like net/http/httptrace.ClientTrace and
// the Observer types of the circuit and ratelimit packages, so that fields can
// be added later without breaking callers. The same facts also reach the
// call's recorder as events, which is how the tracing package sees them.
type Observer struct {
	// Retry is called for every failed attempt that could have been retried:
	// once a retry is scheduled (before the wait), or when it is refused
	// (info.Refused says why). ctx is the call's context.
	Retry func(ctx context.Context, info RetryInfo)
}

// WithObserver sets the functions that receive the Transport's decisions.
// Default: none.
func WithObserver(o Observer) Option {
	return optionFunc(func(c *config) { c.obs = o })
}

// WithOnRetry registers f as Observer.Retry.
//
// Deprecated: use WithObserver(Observer{Retry: ...}), the shape every package
// of outbound observes with; WithOnRetry remains for one release.
func WithOnRetry(f func(RetryInfo)) Option {
	return optionFunc(func(c *config) {
		c.obs.Retry = nil
		if f != nil {
			c.obs.Retry = func(_ context.Context, info RetryInfo) { f(info) }
		}
	})
}
