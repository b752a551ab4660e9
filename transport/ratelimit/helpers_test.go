package ratelimit

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/outboundhttp/outbound/internal/callctx"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// okNext returns 200 responses with a small body and counts calls.
func okNext(calls *atomic.Int64) roundTripFunc {
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

// fakeClock is a manual clock: timers fire only when Advance passes them.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	c       chan time.Time
	stopped bool
	fired   bool
}

// newFakeClock starts at the real time, so that context deadlines (which
// are real) compare sensibly with it.
func newFakeClock() *fakeClock { return &fakeClock{now: time.Now().Truncate(time.Second)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ft := &fakeTimer{at: c.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		ft.fired = true
		ft.c <- c.now
	} else {
		c.timers = append(c.timers, ft)
	}
	return ft.c, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !ft.stopped && !ft.fired
		ft.stopped = true
		return was
	}
}

func (c *fakeClock) option() Option { return withClock(c.Now, c.NewTimer) }

// Advance moves the clock and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, ft := range c.timers {
		switch {
		case ft.stopped:
		case !ft.at.After(c.now):
			ft.fired = true
			ft.c <- c.now
		default:
			kept = append(kept, ft)
		}
	}
	c.timers = kept
}

// pending returns the number of armed timers.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, ft := range c.timers {
		if !ft.stopped && !ft.fired {
			n++
		}
	}
	return n
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

// recorder collects callctx events.
type recorder struct {
	mu     sync.Mutex
	events []callctx.Event
}

func (r *recorder) Record(_ context.Context, ev callctx.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) all() []callctx.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]callctx.Event(nil), r.events...)
}

// withAdaptiveTuning changes the adaptive limit's parameters, for tests.
func withAdaptiveTuning(f func(*adaptiveConfig)) Option {
	return optionFunc(func(c *config) {
		if c.adaptive != nil {
			f(c.adaptive)
		}
	})
}
