package ratelimit_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outboundhttp/outbound/internal/contracttest"
	"github.com/outboundhttp/outbound/transport/ratelimit"
)

// Each limit is run with a refusal and a wait of its own kind, so every wait
// and refusal path of the Transport meets the suite: a full queue and server
// pushback (static limit), the shared limiter (adaptive limit), the token
// bucket (rate).

// One slot and no queue: a slot not released when the caller is done with a
// body refuses the suite's next request.
func TestContractStatic(t *testing.T) {
	limits := []ratelimit.Option{ratelimit.WithConcurrency(1), ratelimit.WithQueue(0)}
	contracttest.Run(t, ratelimit.Middleware(limits...),
		// The priming request holds the only slot: the queue is full.
		contracttest.Refuses(primed(limits, status(http.StatusOK, ""), true)),
		// The priming request gets a 429 asking for a pause (30 s after
		// WithMaxPushback's default cap).
		contracttest.Waits(primed(limits, status(http.StatusTooManyRequests, "60"), false)),
		contracttest.NeverDiscards("ratelimit hands on every response (pushback only pauses later requests)"),
	)
}

func TestContractAdaptive(t *testing.T) {
	limits := []ratelimit.Option{ratelimit.WithAdaptiveConcurrency(1, 1), ratelimit.WithQueue(0)}
	with := func(l ratelimit.Limiter) []ratelimit.Option {
		return append(append([]ratelimit.Option(nil), limits...), ratelimit.WithSharedLimiter(l))
	}
	contracttest.Run(t, ratelimit.Middleware(limits...),
		contracttest.Refuses(ratelimit.Middleware(with(refusing)...)),
		contracttest.Waits(ratelimit.Middleware(with(pausing)...)),
		contracttest.NeverDiscards("ratelimit hands on every response"),
	)
}

func TestContractRate(t *testing.T) {
	contracttest.Run(t, ratelimit.Middleware(ratelimit.WithRate(1000, 1000)),
		// The priming request took the only token; the next comes in two
		// hours, past the suite's deadline: refused at once.
		contracttest.Refuses(primed([]ratelimit.Option{ratelimit.WithRate(1.0/7200, 1)}, status(http.StatusOK, ""), false)),
		// The next token comes in a minute.
		contracttest.Waits(primed([]ratelimit.Option{ratelimit.WithRate(1.0/60, 1)}, status(http.StatusOK, ""), false)),
		contracttest.NeverDiscards("ratelimit hands on every response"),
	)
}

// A shared limiter that never admits: with no RetryAfter the request is
// refused at once; with a minute, it waits a minute and asks again.
var (
	refusing = ratelimit.LimiterFunc(func(context.Context, string) (ratelimit.Result, error) {
		return ratelimit.Result{}, nil
	})
	pausing = ratelimit.LimiterFunc(func(context.Context, string) (ratelimit.Result, error) {
		return ratelimit.Result{RetryAfter: time.Minute}, nil
	})
)

// status returns an answer with code and, when retryAfter is not empty, a
// Retry-After header.
func status(code int, retryAfter string) func(*http.Request) *http.Response {
	return func(r *http.Request) *http.Response {
		resp := &http.Response{StatusCode: code, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("primed")), Request: r}
		if retryAfter != "" {
			resp.Header.Set("Retry-After", retryAfter)
		}
		return resp
	}
}

// primed returns a constructor of a Transport with opts that has already
// sent one request to contracttest.URL, answered by answer instead of next.
// With hold, the priming response is never closed, so its slot stays taken.
func primed(opts []ratelimit.Option, answer func(*http.Request) *http.Response, hold bool) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper {
		var n atomic.Int32
		tr := ratelimit.NewTransport(contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			if n.Add(1) == 1 {
				return answer(r), nil
			}
			return next.RoundTrip(r)
		}), opts...)
		req, err := http.NewRequest(http.MethodGet, contracttest.URL, nil)
		if err != nil {
			panic(err)
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			panic("priming request: " + err.Error())
		}
		if !hold {
			resp.Body.Close()
		}
		return tr
	}
}
