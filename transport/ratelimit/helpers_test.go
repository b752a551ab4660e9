package ratelimit

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/outboundhttp/outbound/internal/contracttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// okNext returns 200 responses with a small body and counts calls.
func okNext(calls *atomic.Int64) contracttest.RoundTripFunc {
	return func(r *http.Request) (*http.Response, error) {
		calls.Add(1)
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("ok")), Request: r}, nil
	}
}

// trackedBody records whether the request body was closed.
type trackedBody struct {
	io.Reader
	closed atomic.Bool
}

func (b *trackedBody) Close() error { b.closed.Store(true); return nil }

func newReq(t testing.TB, ctx context.Context, url string) (*http.Request, *trackedBody) {
	t.Helper()
	b := &trackedBody{Reader: strings.NewReader("payload")}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, b)
	if err != nil {
		t.Fatal(err)
	}
	return req, b
}

// waitFor polls cond for up to 5 s; it is for goroutines reaching a blocking
// point, not for time to pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// withAdaptiveTuning changes the adaptive limit's parameters, for tests.
func withAdaptiveTuning(f func(*adaptiveConfig)) Option {
	return optionFunc(func(c *config) {
		if c.adaptive != nil {
			f(c.adaptive)
		}
	})
}

// slotHeld returns a Transport with one concurrency slot, a queue of four and
// the queue timeout given, whose slot a response held until the test ends
// keeps taken: every request sent through it waits in the queue.
func slotHeld(t *testing.T, timeout time.Duration) *Transport {
	t.Helper()
	rt := NewTransport(okNext(new(atomic.Int64)), WithConcurrency(1), WithQueue(4), WithQueueTimeout(timeout))
	req, _ := newReq(t, context.Background(), "http://a.test/")
	held, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held.Body.Close() })
	return rt
}

// refusedAfterTimeout sends a request through rt, whose slot is held
// (slotHeld), and fails unless it is refused for want of a slot no sooner
// than the queue timeout. Timers never fire early, so the bound holds on any
// machine.
func refusedAfterTimeout(t *testing.T, rt *Transport, round int, timeout time.Duration) {
	t.Helper()
	r, _ := newReq(t, context.Background(), "http://a.test/")
	start := time.Now()
	_, err := rt.RoundTrip(r)
	asLimit(t, err, ReasonConcurrency)
	if got := time.Since(start); got < timeout {
		t.Fatalf("round %d: gave up after %v; want at least the %v queue timeout", round, got, timeout)
	}
}
