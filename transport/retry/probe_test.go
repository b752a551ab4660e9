package retry_test

// WithWaitForBreaker against the real breaker of transport/circuit, in
// testing/synctest bubbles: gobreaker reads time.Now, which the bubble's fake
// clock drives, so a 5 s break passes at once and times are exact.

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outboundhttp/outbound/internal/contracttest"
	"github.com/outboundhttp/outbound/transport/circuit"
	"github.com/outboundhttp/outbound/transport/retry"
)

const upstream = "http://a.example"

// openStack returns retry (with opts) over a breaker that opens on one
// failure, over u, with the breaker already open: one 503 went through.
func openStack(t *testing.T, u *contracttest.Gate, opts ...retry.Option) http.RoundTripper {
	t.Helper()
	cb := circuit.NewTransport(u, circuit.WithMinRequests(1))
	u.Set(503, nil)
	resp, err := cb.RoundTrip(get(t, context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if s := cb.State(upstream + ":80"); s != circuit.Open {
		t.Fatalf("breaker %v after a 503; want open", s)
	}
	return retry.NewTransport(cb, append([]retry.Option{retry.WithMaxAttempts(1)}, opts...)...)
}

func get(t *testing.T, ctx context.Context) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, upstream+"/v1/orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// outcome is how one call ended, and how long after it started.
type outcome struct {
	status int
	err    error
	took   time.Duration
}

func call(t *testing.T, rt http.RoundTripper, deadline time.Duration) outcome {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	resp, err := rt.RoundTrip(get(t, ctx))
	o := outcome{err: err, took: time.Since(start)}
	if resp != nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		o.status = resp.StatusCode
	}
	return o
}

// TestWaitForBreakerOneProbeReleasesWaiters: calls refused by an open
// breaker wait; when the break is over exactly one request reaches the
// upstream while the breaker is half-open (the probe), and its success
// releases every waiter, which then passes the closed breaker.
func TestWaitForBreakerOneProbeReleasesWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := contracttest.NewGate()
		rt := openStack(t, u, retry.WithWaitForBreaker())
		hold := make(chan struct{})
		u.Set(200, hold)
		const waiters = 10
		out := make([]outcome, waiters)
		var wg sync.WaitGroup
		for i := range waiters {
			wg.Go(func() { out[i] = call(t, rt, 10*time.Second) })
		}
		synctest.Wait() // every call refused and waiting
		if got := u.Calls(); got != 1 {
			t.Fatalf("%d requests reached the upstream while open; want only the one that tripped it", got)
		}
		time.Sleep(circuit.DefaultBreakDuration + time.Nanosecond)
		synctest.Wait() // the break is over: the probe is at the upstream
		if got := u.Calls() - 1; got != 1 {
			t.Fatalf("%d requests reached the upstream while half-open; want exactly 1 (the probe)", got)
		}
		close(hold)
		wg.Wait()
		for i, o := range out {
			if o.err != nil || o.status != 200 || o.took != circuit.DefaultBreakDuration+time.Nanosecond {
				t.Errorf("call %d: %d, %v after %v; want 200 after the break", i, o.status, o.err, o.took)
			}
		}
		if got := u.Calls(); got != 1+waiters {
			t.Errorf("the upstream saw %d requests; want %d (the trip, the probe, each waiter once)", got, 1+waiters)
		}
	})
}

// TestWaitForBreakerFailedProbe: two calls wait; when the break is over one
// of them is the probe, and it fails. The other, refused as half-open, then
// waits for the next probe if its deadline reaches it, and otherwise gets
// the refusal at once.
func TestWaitForBreakerFailedProbe(t *testing.T) {
	brk := circuit.DefaultBreakDuration
	for _, tc := range []struct {
		name     string
		deadline time.Duration
		wantOK   bool
		wantTook time.Duration
	}{
		{"next probe fits: waits again", 2*brk + time.Second, true, 2 * (brk + time.Nanosecond)},
		{"next probe out of reach: fails", 2*brk - time.Second, false, brk + time.Nanosecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := contracttest.NewGate()
				rt := openStack(t, u, retry.WithWaitForBreaker())
				hold := make(chan struct{})
				u.Set(503, hold)
				var wg sync.WaitGroup
				out := make([]outcome, 2)
				for i := range out {
					wg.Go(func() { out[i] = call(t, rt, tc.deadline) })
				}
				time.Sleep(brk + time.Nanosecond)
				synctest.Wait() // one call is the probe, held at the upstream
				if got := u.Calls() - 1; got != 1 {
					t.Fatalf("%d requests reached the upstream while half-open; want 1", got)
				}
				u.Set(200, nil) // the upstream recovers just after the probe failed
				close(hold)
				wg.Wait()
				probe, waiter := out[0], out[1]
				if waiter.status == 503 {
					probe, waiter = waiter, probe
				}
				if probe.status != 503 || probe.took != brk+time.Nanosecond {
					t.Errorf("the probe: %d, %v after %v; want its 503 after the break", probe.status, probe.err, probe.took)
				}
				if tc.wantOK {
					if waiter.err != nil || waiter.status != 200 || waiter.took != tc.wantTook {
						t.Errorf("waiter: %d, %v after %v; want 200 after %v", waiter.status, waiter.err, waiter.took, tc.wantTook)
					}
					if got := u.Calls(); got != 3 {
						t.Errorf("the upstream saw %d requests; want 3 (the trip, the failed probe, the waiter as the next probe)", got)
					}
					return
				}
				var oe *circuit.OpenError
				if !errors.As(waiter.err, &oe) || oe.State != circuit.Open || waiter.took != tc.wantTook {
					t.Errorf("waiter: %d, %v after %v; want the OpenError as soon as the probe failed (%v)", waiter.status, waiter.err, waiter.took, tc.wantTook)
				}
			})
		})
	}
}

// TestWaitForBreakerFailsFast: a call whose deadline cannot reach the probe
// fails at once with the OpenError, as without the option; so does one
// without the option, and one whose body cannot be sent again.
func TestWaitForBreakerFailsFast(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     []retry.Option
		deadline time.Duration
		body     io.Reader
	}{
		{"deadline before the probe", []retry.Option{retry.WithWaitForBreaker()}, circuit.DefaultBreakDuration - time.Second, nil},
		{"deadline just at the probe", []retry.Option{retry.WithWaitForBreaker()}, circuit.DefaultBreakDuration + 5*time.Millisecond, nil},
		{"option off", nil, time.Minute, nil},
		{"body not rewindable", []retry.Option{retry.WithWaitForBreaker()}, time.Minute, io.MultiReader(strings.NewReader("x"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				u := contracttest.NewGate()
				rt := openStack(t, u, tc.opts...)
				ctx, cancel := context.WithTimeout(context.Background(), tc.deadline)
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, http.MethodPut, upstream+"/v1/orders", tc.body)
				start := time.Now()
				resp, err := rt.RoundTrip(req)
				var oe *circuit.OpenError
				if resp != nil || !errors.As(err, &oe) || time.Since(start) != 0 {
					t.Fatalf("got %v, %v after %v; want the OpenError at once", resp, err, time.Since(start))
				}
				if u.Calls() != 1 {
					t.Errorf("the upstream saw %d requests; want only the trip", u.Calls())
				}
			})
		})
	}
}

// TestWaitForBreakerCancel: the caller's cancel ends the wait at once.
func TestWaitForBreakerCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := contracttest.NewGate()
		rt := openStack(t, u, retry.WithWaitForBreaker())
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		time.AfterFunc(time.Second, cancel)
		start := time.Now()
		resp, err := rt.RoundTrip(get(t, ctx))
		if resp != nil || !errors.Is(err, context.Canceled) || time.Since(start) != time.Second {
			t.Fatalf("got %v, %v after %v; want context.Canceled after 1s", resp, err, time.Since(start))
		}
	})
}

// TestWaitForBreakerWithoutDeadline: with no deadline to bound it, a call
// waits for one probe's outcome, no more.
func TestWaitForBreakerWithoutDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := contracttest.NewGate()
		rt := openStack(t, u, retry.WithWaitForBreaker())
		hold := make(chan struct{})
		u.Set(503, hold)
		var wg sync.WaitGroup
		out := make([]outcome, 2)
		for i := range out {
			wg.Go(func() {
				start := time.Now()
				resp, err := rt.RoundTrip(get(t, context.Background()))
				out[i] = outcome{err: err, took: time.Since(start)}
				if resp != nil {
					resp.Body.Close()
					out[i].status = resp.StatusCode
				}
			})
		}
		time.Sleep(circuit.DefaultBreakDuration + time.Nanosecond)
		synctest.Wait() // one of them is the probe
		close(hold)
		wg.Wait()
		waiter := out[0]
		if waiter.status == 503 {
			waiter = out[1]
		}
		if !errors.Is(waiter.err, circuit.ErrOpen) || waiter.took != circuit.DefaultBreakDuration+time.Nanosecond {
			t.Fatalf("got %d, %v after %v; want ErrOpen once the probe failed", waiter.status, waiter.err, waiter.took)
		}
	})
}

// TestWaitForBreakerKeepsAttempts: a retry refused by the open breaker waits
// for the probe, and the refused attempt counts against nothing: the call
// still gets its remaining attempts.
func TestWaitForBreakerKeepsAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := contracttest.NewGate(503)
		cb := circuit.NewTransport(u, circuit.WithMinRequests(1))
		var infos []retry.RetryInfo
		rt := retry.NewTransport(cb, retry.WithWaitForBreaker(), retry.WithMaxAttempts(2),
			retry.WithOnRetry(func(i retry.RetryInfo) { infos = append(infos, i) }))
		var wg sync.WaitGroup
		var o outcome
		wg.Go(func() { o = call(t, rt, 10*time.Second) }) // 503, trips, retry refused: waits
		synctest.Wait()
		u.Set(200, nil)
		wg.Wait()
		if o.err != nil || o.status != 200 {
			t.Fatalf("got %d, %v; want 200 from the attempt sent after the break", o.status, o.err)
		}
		if u.Calls() != 2 || len(infos) != 1 {
			t.Fatalf("%d requests, %d retries; want 2 and 1 (the refusal is no attempt)", u.Calls(), len(infos))
		}
	})
}
