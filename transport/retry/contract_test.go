package retry_test

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outboundhttp/outbound/internal/contracttest"
	"github.com/outboundhttp/outbound/transport/retry"
)

func TestContract(t *testing.T) {
	contracttest.Run(t, retry.Middleware(),
		contracttest.NeverRefuses("retry sends every request at least once"),
		contracttest.Waits(waitingRetry()),
		contracttest.Discards(retry.Middleware()), // the suite's 503 is retried
	)
}

// The attempt timeout's context and timer live until the body is done.
func TestContractAttemptTimeout(t *testing.T) {
	contracttest.Run(t, retry.Middleware(retry.WithAttemptTimeout(time.Minute), retry.WithAttemptHeader("X-Attempt")),
		contracttest.NeverRefuses("retry sends every request at least once"),
		contracttest.Waits(waitingRetry(retry.WithAttemptTimeout(time.Minute))),
		contracttest.Discards(retry.Middleware(retry.WithAttemptTimeout(time.Minute))),
	)
}

// waitingRetry answers the first attempt itself with a 503 asking for a
// minute's pause (capped at 30 s by DefaultMaxRetryAfter), so the retry layer
// waits before it sends the second attempt to next.
func waitingRetry(opts ...retry.Option) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper {
		var n atomic.Int32
		first := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			if n.Add(1) > 1 {
				return next.RoundTrip(r)
			}
			if r.Body != nil {
				io.Copy(io.Discard, r.Body)
				r.Body.Close()
			}
			return &http.Response{
				StatusCode: http.StatusServiceUnavailable,
				Header:     http.Header{"Retry-After": {"60"}},
				Body:       io.NopCloser(strings.NewReader("busy")),
				Request:    r,
			}, nil
		})
		return retry.NewTransport(first, opts...)
	}
}
