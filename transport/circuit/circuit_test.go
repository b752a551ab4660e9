package circuit

// gobreaker reads time.Now itself and has no clock hook, so the unit tests run
// inside testing/synctest bubbles: time there is fake, starts fixed, and
// time.Sleep returns at once having advanced the clock. No test here waits
// for real time. End-to-end tests over sockets are in e2e_test.go.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/internal/contracttest"
	"github.com/outboundhttp/outbound/internal/refusal"
)

// fakeBase answers with the status it holds and counts the requests it saw.
type fakeBase struct {
	status atomic.Int32
	err    atomic.Pointer[error]
	calls  atomic.Int32
}

func newFake(status int) *fakeBase {
	f := &fakeBase{}
	f.status.Store(int32(status))
	return f
}

func (f *fakeBase) RoundTrip(r *http.Request) (*http.Response, error) {
	f.calls.Add(1)
	if r.Body != nil {
		r.Body.Close()
	}
	if e := f.err.Load(); e != nil {
		return nil, *e
	}
	return &http.Response{StatusCode: int(f.status.Load()), Body: http.NoBody, Request: r}, nil
}

func (f *fakeBase) setErr(err error) { f.err.Store(&err) }

func get(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// do sends n requests and returns the last error; responses are closed.
func do(t *testing.T, rt http.RoundTripper, url string, n int) error {
	t.Helper()
	var last error
	for range n {
		resp, err := rt.RoundTrip(get(t, url))
		if resp != nil {
			resp.Body.Close()
		}
		if resp != nil && err != nil {
			t.Fatalf("got a response and an error %v", err)
		}
		last = err
	}
	return last
}

const hostA = "http://a.example"

type change struct {
	key      string
	from, to State
}

type changes struct {
	mu sync.Mutex
	l  []change
}

func (c *changes) record(key string, from, to State) {
	c.mu.Lock()
	c.l = append(c.l, change{key, from, to})
	c.mu.Unlock()
}

func (c *changes) get() []change {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]change(nil), c.l...)
}

func TestTripsOnRatioOverMinRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := newFake(503)
		tr := NewTransport(base)
		if err := do(t, tr, hostA, DefaultMinRequests-1); err != nil {
			t.Fatalf("before the minimum: got %v; want the 503 response", err)
		}
		if s := tr.State("http://a.example:80"); s != Closed {
			t.Fatalf("after %d failures: state %v; want closed", DefaultMinRequests-1, s)
		}
		do(t, tr, hostA, 1)
		if s := tr.State("http://a.example:80"); s != Open {
			t.Fatalf("after %d failures: state %v; want open", DefaultMinRequests, s)
		}
		sent := base.calls.Load()
		start := time.Now()
		_, err := tr.RoundTrip(get(t, hostA))
		if !errors.Is(err, ErrOpen) {
			t.Fatalf("open breaker: got %v; want ErrOpen", err)
		}
		var oe *OpenError
		if !errors.As(err, &oe) {
			t.Fatalf("got %T; want *OpenError", err)
		}
		if oe.Key != "http://a.example:80" || oe.State != Open || oe.RetryIn != DefaultBreakDuration {
			t.Fatalf("got %+v; want key http://a.example:80, open, RetryIn %v", *oe, DefaultBreakDuration)
		}
		if !refusal.IsLocal(err) {
			t.Fatal("OpenError must report LocalRefusal() == true")
		}
		if got := base.calls.Load(); got != sent {
			t.Fatalf("refused request reached the base: %d calls; want %d", got, sent)
		}
		time.Sleep(2 * time.Second)
		_, err = tr.RoundTrip(get(t, hostA))
		if !errors.As(err, &oe) || oe.RetryIn != DefaultBreakDuration-2*time.Second {
			t.Fatalf("2 s later: got %v; want RetryIn 3s", err)
		}
		_ = start
	})
}

// TestWarmUpWeighsAttemptsInFlight: an upstream that sheds load answers its
// 503s at once while the requests it serves are still in flight. A fresh
// breaker must not read those first fast failures as an outage while many
// more attempts are in flight; once warmUp has passed, the ratio alone
// decides again.
func TestWarmUpWeighsAttemptsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var slow atomic.Int64
		base := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.URL.Path == "/slow" {
				slow.Add(1)
				<-release
				return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
			}
			return &http.Response{StatusCode: 503, Body: http.NoBody, Request: r}, nil
		})
		tr := NewTransport(base)
		var wg sync.WaitGroup
		for range 40 {
			wg.Go(func() { do(t, tr, hostA+"/slow", 1) })
		}
		synctest.Wait()
		if got := slow.Load(); got != 40 {
			t.Fatalf("%d slow attempts in flight; want 40", got)
		}
		do(t, tr, hostA+"/shed", 30) // 30 of 70 sent have failed: 43 %
		if s := tr.State("http://a.example:80"); s != Closed {
			t.Fatalf("after 30 fast 503s with 40 attempts in flight: got %v; want closed", s)
		}
		time.Sleep(warmUp)
		do(t, tr, hostA+"/shed", 1) // every finished attempt failed, warm-up over
		if s := tr.State("http://a.example:80"); s != Open {
			t.Fatalf("after the warm-up: got %v; want open", s)
		}
		close(release)
		wg.Wait()
	})
}

// TestFastOutageTripsDuringWarmUp: an upstream that is down answers every
// attempt at once, so few are in flight and the breaker opens on the
// minimum number of attempts, warm-up or not.
func TestFastOutageTripsDuringWarmUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := NewTransport(newFake(503))
		do(t, tr, hostA, DefaultMinRequests)
		if s := tr.State("http://a.example:80"); s != Open {
			t.Fatalf("after %d fast 503s: got %v; want open", DefaultMinRequests, s)
		}
	})
}

func TestRatio(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ok, ko int // successes then failures, interleaved
		want   State
	}{
		{"90% failures trips", 2, 18, Open},
		{"85% failures does not trip", 3, 17, Closed},
		{"half failures does not trip: an upstream serving half is not down", 10, 10, Closed},
		{"long run at 80% does not trip", 20, 80, Closed},
		{"long run at 95% trips", 5, 95, Open},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				base := newFake(200)
				tr := NewTransport(base)
				ok, ko := tc.ok, tc.ko
				for ok+ko > 0 {
					// Interleave so neither kind comes in a run, and end
					// on a failure: the rule is checked when one is recorded.
					if ko > 0 && (ok == 0 || ko*(tc.ok) > ok*(tc.ko)) {
						base.status.Store(503)
						ko--
					} else {
						base.status.Store(200)
						ok--
					}
					do(t, tr, hostA, 1)
				}
				if s := tr.State("http://a.example:80"); s != tc.want {
					t.Fatalf("got %v; want %v", s, tc.want)
				}
			})
		})
	}
}

func TestWithFailureRatioAndMinRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := newFake(500)
		tr := NewTransport(base, WithFailureRatio(1), WithMinRequests(3))
		do(t, tr, hostA, 2)
		if s := tr.State("http://a.example:80"); s != Closed {
			t.Fatalf("got %v after 2; want closed", s)
		}
		do(t, tr, hostA, 1)
		if s := tr.State("http://a.example:80"); s != Open {
			t.Fatalf("got %v after 3; want open", s)
		}
	})
}

func TestSlidingWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := newFake(503)
		tr := NewTransport(base)
		do(t, tr, hostA, 15)
		time.Sleep(DefaultWindow + DefaultWindow/windowBuckets) // all 15 have left
		do(t, tr, hostA, 15)
		if s := tr.State("http://a.example:80"); s != Closed {
			t.Fatalf("15 + 15 failures a window apart: got %v; want closed", s)
		}
		time.Sleep(DefaultWindow / 3) // the last 15 are still in
		do(t, tr, hostA, 5)
		if s := tr.State("http://a.example:80"); s != Open {
			t.Fatalf("15 + 5 failures within the window: got %v; want open", s)
		}
	})
}

func TestProbeClosesAndFailedProbeReopens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ch changes
		base := newFake(503)
		tr := NewTransport(base, WithMinRequests(5), WithOnStateChange(ch.record))
		do(t, tr, hostA, 5)
		time.Sleep(DefaultBreakDuration - time.Millisecond)
		if err := do(t, tr, hostA, 1); !errors.Is(err, ErrOpen) {
			t.Fatalf("just before the break ends: got %v; want ErrOpen", err)
		}
		time.Sleep(2 * time.Millisecond)
		sent := base.calls.Load()
		// Failed probe: the 503 goes back to the caller and the breaker reopens.
		if err := do(t, tr, hostA, 1); err != nil {
			t.Fatalf("probe: got %v; want the 503 response", err)
		}
		if got := base.calls.Load() - sent; got != 1 {
			t.Fatalf("probe reached the base %d times; want 1", got)
		}
		var oe *OpenError
		if err := do(t, tr, hostA, 1); !errors.As(err, &oe) || oe.RetryIn != DefaultBreakDuration {
			t.Fatalf("after a failed probe: got %v; want OpenError with a full break", err)
		}
		time.Sleep(DefaultBreakDuration + time.Millisecond) // gobreaker: open while now <= expiry
		base.status.Store(200)
		if err := do(t, tr, hostA, 1); err != nil {
			t.Fatalf("second probe: %v", err)
		}
		if s := tr.State("http://a.example:80"); s != Closed {
			t.Fatalf("after a good probe: got %v; want closed", s)
		}
		if err := do(t, tr, hostA, 50); err != nil {
			t.Fatalf("closed again: %v", err)
		}
		k := "http://a.example:80"
		want := []change{
			{k, Closed, Open}, {k, Open, HalfOpen}, {k, HalfOpen, Open},
			{k, Open, HalfOpen}, {k, HalfOpen, Closed},
		}
		if got := ch.get(); !equalChanges(got, want) {
			t.Fatalf("state changes:\n got %v\nwant %v", got, want)
		}
	})
}

func equalChanges(a, b []change) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// blockingBase holds every request until release is closed.
type blockingBase struct {
	release chan struct{}
	calls   atomic.Int32
	status  int
}

func (b *blockingBase) RoundTrip(r *http.Request) (*http.Response, error) {
	b.calls.Add(1)
	select {
	case <-b.release:
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
	return &http.Response{StatusCode: b.status, Body: http.NoBody, Request: r}, nil
}

func TestHalfOpenLimitsProbes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fail := newFake(503)
		blk := &blockingBase{release: make(chan struct{}), status: 200}
		var useBlk atomic.Bool
		base := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			if useBlk.Load() {
				return blk.RoundTrip(r)
			}
			return fail.RoundTrip(r)
		})
		tr := NewTransport(base, WithMinRequests(5), WithHalfOpenProbes(2))
		do(t, tr, hostA, 5)
		time.Sleep(DefaultBreakDuration + time.Millisecond) // gobreaker: open while now <= expiry
		useBlk.Store(true)
		errs := make(chan error, 2)
		for range 2 {
			go func() {
				resp, err := tr.RoundTrip(get(t, hostA))
				if resp != nil {
					resp.Body.Close()
				}
				errs <- err
			}()
		}
		synctest.Wait() // both probes are in the base
		var oe *OpenError
		if err := do(t, tr, hostA, 1); !errors.As(err, &oe) || oe.State != HalfOpen || oe.RetryIn != 0 {
			t.Fatalf("third request while 2 probes are out: got %v; want half-open OpenError", err)
		}
		if !strings.Contains(oe.Error(), "probe in flight") {
			t.Fatalf("message %q", oe.Error())
		}
		if got := blk.calls.Load(); got != 2 {
			t.Fatalf("base saw %d probes; want 2", got)
		}
		close(blk.release)
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatalf("probe: %v", err)
			}
		}
		if s := tr.State("http://a.example:80"); s != Closed {
			t.Fatalf("after 2 good probes: got %v; want closed", s)
		}
	})
}

func Test429AndClientErrorsNeverTrip(t *testing.T) {
	for _, code := range []int{429, 400, 404, 408, 501} {
		synctest.Test(t, func(t *testing.T) {
			base := newFake(code)
			tr := NewTransport(base, WithMinRequests(1))
			if err := do(t, tr, hostA, 200); err != nil {
				t.Fatalf("%d: %v", code, err)
			}
			if s := tr.State("http://a.example:80"); s != Closed {
				t.Fatalf("200 × %d: got %v; want closed", code, s)
			}
		})
	}
}

func TestServerErrorsAndConnectionErrorsTrip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		err    error
	}{
		{"500", 500, nil}, {"502", 502, nil}, {"503", 503, nil}, {"504", 504, nil},
		{"connection refused", 0, errors.New("dial tcp 127.0.0.1:1: connect: connection refused")},
		{"header timeout", 0, timeoutError{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				base := newFake(tc.status)
				if tc.err != nil {
					base.setErr(tc.err)
				}
				tr := NewTransport(base, WithMinRequests(3))
				do(t, tr, hostA, 3)
				if s := tr.State("http://a.example:80"); s != Open {
					t.Fatalf("got %v; want open", s)
				}
			})
		})
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "net/http: timeout awaiting response headers" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func TestWithFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := newFake(429)
		tr := NewTransport(base, WithMinRequests(3), WithFailure(func(resp *http.Response, err error) bool {
			return err != nil || resp.StatusCode == 429
		}))
		do(t, tr, hostA, 3)
		if s := tr.State("http://a.example:80"); s != Open {
			t.Fatalf("custom rule counting 429: got %v; want open", s)
		}
	})
}

func TestCallerCancellationIsExcluded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := newFake(200)
		tr := NewTransport(base, WithMinRequests(3))
		canceled, cancel := context.WithCancel(context.Background())
		cancel()
		expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel2()
		for _, ctx := range []context.Context{canceled, expired} {
			base.setErr(ctx.Err())
			for range 50 {
				resp, err := tr.RoundTrip(get(t, hostA).WithContext(ctx))
				if resp != nil || !errors.Is(err, ctx.Err()) {
					t.Fatalf("got %v, %v; want the context error unchanged", resp, err)
				}
			}
		}
		if s := tr.State("http://a.example:80"); s != Closed {
			t.Fatalf("100 caller-ended attempts: got %v; want closed", s)
		}

		// In half-open, an excluded probe frees its slot for the next one.
		base.err.Store(nil)
		base.status.Store(503)
		do(t, tr, hostA, 3)
		time.Sleep(DefaultBreakDuration + time.Millisecond) // gobreaker: open while now <= expiry
		base.setErr(context.Canceled)
		if _, err := tr.RoundTrip(get(t, hostA).WithContext(canceled)); !errors.Is(err, context.Canceled) {
			t.Fatalf("canceled probe: got %v", err)
		}
		base.err.Store(nil)
		base.status.Store(200)
		if err := do(t, tr, hostA, 1); err != nil {
			t.Fatalf("probe after a canceled probe: got %v; want it sent", err)
		}
		if s := tr.State("http://a.example:80"); s != Closed {
			t.Fatalf("got %v; want closed", s)
		}
	})
}

func TestHostsAreIndependent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			code := 200
			if r.URL.Host == "down.example" {
				code = 503
			}
			return &http.Response{StatusCode: code, Body: http.NoBody}, nil
		})
		tr := NewTransport(base, WithMinRequests(5))
		do(t, tr, "http://down.example/x", 5)
		if err := do(t, tr, "http://down.example/x", 1); !errors.Is(err, ErrOpen) {
			t.Fatalf("down host: got %v; want ErrOpen", err)
		}
		for range 100 {
			resp, err := tr.RoundTrip(get(t, "http://up.example/x"))
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("healthy host: got %v, %v", resp, err)
			}
		}
		// Same host, other scheme or port: another upstream.
		if err := do(t, tr, "https://down.example/x", 1); err != nil {
			t.Fatalf("https on the down host is another key: got %v", err)
		}
	})
}

func TestWithKeyAndMaxKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := newFake(503)
		shared := NewTransport(base, WithMinRequests(5), WithKey(func(*http.Request) string { return "cluster" }))
		do(t, shared, "http://n1.example", 3)
		do(t, shared, "http://n2.example", 2)
		if err := do(t, shared, "http://n3.example", 1); !errors.Is(err, ErrOpen) {
			t.Fatalf("one key for the cluster: got %v; want ErrOpen", err)
		}
		if s := shared.State("cluster"); s != Open {
			t.Fatalf("got %v", s)
		}

		tr := NewTransport(base, WithMinRequests(5), WithMaxKeys(1))
		do(t, tr, hostA, 5)
		if s := tr.State("http://a.example:80"); s != Open {
			t.Fatalf("got %v; want open", s)
		}
		do(t, tr, "http://b.example", 1) // evicts a.example
		if s := tr.State("http://a.example:80"); s != Closed {
			t.Fatalf("evicted key: got %v; want closed (forgotten)", s)
		}
		if n := tr.breakers.Len(); n != 1 {
			t.Fatalf("holding %d keys; want 1", n)
		}
	})
}

func TestPanicInNextReportsFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var boom atomic.Bool
		fail := newFake(503)
		base := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			if boom.Load() {
				panic("boom")
			}
			return fail.RoundTrip(r)
		})
		tr := NewTransport(base, WithMinRequests(3))
		do(t, tr, hostA, 3)
		time.Sleep(DefaultBreakDuration + time.Millisecond) // gobreaker: open while now <= expiry
		boom.Store(true)
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("panic was swallowed")
				}
			}()
			tr.RoundTrip(get(t, hostA))
		}()
		// The panicking probe counted as a failure: the breaker is open
		// again with a full break, not stuck half-open forever.
		var oe *OpenError
		if err := do(t, tr, hostA, 1); !errors.As(err, &oe) || oe.State != Open {
			t.Fatalf("after a panicking probe: got %v; want open", err)
		}
	})
}

func TestRefusalEmitsEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := NewTransport(newFake(503), WithMinRequests(2), WithBreakDuration(time.Minute))
		do(t, tr, hostA, 2)
		time.Sleep(10 * time.Second)
		rec := &contracttest.Recorder{}
		ctx := callctx.WithAttempt(callctx.WithRecorder(context.Background(), rec), 2)
		tr.RoundTrip(get(t, hostA).WithContext(ctx))
		want := callctx.Event{Kind: callctx.KindCircuitRejected, Attempt: 2, Delay: 50 * time.Second, Reason: "open", Key: "http://a.example:80"}
		if evs := rec.Events(); len(evs) != 1 || evs[0] != want {
			t.Fatalf("events %+v; want [%+v]", evs, want)
		}
	})
}

// The caller's request, a refused request's body and CloseIdleConnections
// are checked by the contract suite (contract_test.go).
func TestNilNextAndNilResponse(t *testing.T) {
	if tr := NewTransport(nil); tr.next != http.DefaultTransport {
		t.Fatal("nil next is not http.DefaultTransport")
	}
	synctest.Test(t, func(t *testing.T) {
		broken := contracttest.RoundTripFunc(func(*http.Request) (*http.Response, error) { return nil, nil })
		tr := NewTransport(broken, WithMinRequests(2))
		do(t, tr, hostA, 2) // must not panic in the default classifier
		if s := tr.State("http://a.example:80"); s != Open {
			t.Fatalf("(nil, nil) from next: got %v; want counted as failures", s)
		}
	})
}

func TestMiddlewareBuildsIndependentTransports(t *testing.T) {
	mw := Middleware(WithMinRequests(1))
	a := mw(newFake(503)).(*Transport)
	b := mw(newFake(503)).(*Transport)
	synctest.Test(t, func(t *testing.T) {
		do(t, a, hostA, 1)
		if a.State("http://a.example:80") != Open || b.State("http://a.example:80") != Closed {
			t.Fatal("transports built by one Middleware share breakers")
		}
	})
}

func TestOptionPanics(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func()
		want string
	}{
		{"ratio 0", func() { WithFailureRatio(0) }, "circuit: WithFailureRatio(0): ratio must be in (0, 1]"},
		{"ratio 1.5", func() { WithFailureRatio(1.5) }, "circuit: WithFailureRatio(1.5)"},
		{"min 0", func() { WithMinRequests(0) }, "circuit: WithMinRequests(0): n must be at least 1"},
		{"window 0", func() { WithWindow(0) }, "circuit: WithWindow(0s)"},
		{"break -1", func() { WithBreakDuration(-time.Second) }, "circuit: WithBreakDuration(-1s)"},
		{"probes 0", func() { WithHalfOpenProbes(0) }, "circuit: WithHalfOpenProbes(0)"},
		{"keys 0", func() { WithMaxKeys(0) }, "circuit: WithMaxKeys(0)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				s, _ := r.(string)
				if !strings.HasPrefix(s, tc.want) {
					t.Fatalf("panic %v; want prefix %q", r, tc.want)
				}
			}()
			tc.f()
		})
	}
	// nil options and nil functions are ignored
	tr := NewTransport(newFake(200), nil, WithKey(nil), WithFailure(nil), WithOnStateChange(nil))
	if tr.cfg.key != nil || tr.cfg.isFailure == nil || tr.cfg.obs.StateChange != nil { // nil key: the cached default
		t.Fatal("nil arguments not ignored")
	}
}

func TestStateStringAndErrorMessage(t *testing.T) {
	for s, want := range map[State]string{Closed: "closed", HalfOpen: "half-open", Open: "open", 7: "state(7)"} {
		if s.String() != want {
			t.Errorf("%d: got %q; want %q", s, s.String(), want)
		}
	}
	e := &OpenError{Key: "https://api.example:443", State: Open, RetryIn: 4200 * time.Millisecond}
	if got, want := e.Error(), "circuit: breaker open for https://api.example:443: next probe in 4200ms"; got != want {
		t.Errorf("got %q; want %q", got, want)
	}
}

func TestWindowOption(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := NewTransport(newFake(503), WithWindow(time.Second), WithMinRequests(4))
		do(t, tr, hostA, 3)
		time.Sleep(1100 * time.Millisecond)
		do(t, tr, hostA, 3)
		if s := tr.State("http://a.example:80"); s != Closed {
			t.Fatalf("3+3 failures 1.1 s apart in a 1 s window: got %v; want closed", s)
		}
		do(t, tr, hostA, 1)
		if s := tr.State("http://a.example:80"); s != Open {
			t.Fatalf("got %v; want open", s)
		}
	})
}

func TestAttemptTimeoutCauseCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			<-r.Context().Done()
			return nil, r.Context().Err()
		})
		tr := NewTransport(base, WithMinRequests(3))
		for range 3 {
			// The caller's own deadline: excluded.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			tr.RoundTrip(get(t, hostA).WithContext(ctx))
			cancel()
		}
		if s := tr.State("http://a.example:80"); s != Closed {
			t.Fatalf("caller deadlines: got %v; want closed", s)
		}
		for range 3 {
			// An attempt timeout set by a layer above (retry), marked by its cause.
			ctx, cancel := context.WithTimeoutCause(context.Background(), time.Second, callctx.ErrAttemptTimeout)
			tr.RoundTrip(get(t, hostA).WithContext(ctx))
			cancel()
		}
		if s := tr.State("http://a.example:80"); s != Open {
			t.Fatalf("attempt timeouts: got %v; want open", s)
		}
	})
}

// localRefusal is an error like ratelimit's LimitError or budget's refusal.
type localRefusal struct{}

func (localRefusal) Error() string      { return "ratelimit: queue full" }
func (localRefusal) LocalRefusal() bool { return true }

// A layer below that refuses to send (rate limit, pushback, budget) says
// nothing about the upstream: it must not open the breaker.
func TestLocalRefusalsBelowAreExcluded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		refusing := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			return nil, fmt.Errorf("wrapped: %w", localRefusal{})
		})
		tr := NewTransport(refusing, WithMinRequests(1))
		if err := do(t, tr, hostA, 50); err == nil || errors.Is(err, ErrOpen) {
			t.Fatalf("last error %v; want the refusal itself, not ErrOpen", err)
		}
		if s := tr.State("http://a.example:80"); s != Closed {
			t.Fatalf("after 50 local refusals the breaker is %v; want closed", s)
		}
	})
}
