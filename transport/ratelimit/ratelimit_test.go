package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/time/rate"

	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/internal/contracttest"
	"github.com/outboundhttp/outbound/internal/refusal"
)

func asLimit(t *testing.T, err error, want Reason) *LimitError {
	t.Helper()
	if !errors.Is(err, ErrLimited) {
		t.Fatalf("err = %v; want one matching ErrLimited", err)
	}
	var le *LimitError
	if !errors.As(err, &le) {
		t.Fatalf("err = %v (%T); want a *LimitError", err, err)
	}
	if le.Reason != want {
		t.Fatalf("Reason = %q; want %q (err %v)", le.Reason, want, err)
	}
	if !refusal.IsLocal(err) {
		t.Fatalf("err %v: LocalRefusal not true", err)
	}
	return le
}

func TestRateWaitsForToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		rec := &contracttest.Recorder{}
		rt := NewTransport(okNext(&calls), WithRate(1, 1))
		ctx := callctx.WithRecorder(context.Background(), rec)

		req, _ := newReq(t, ctx, "http://a.test/")
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()

		done := make(chan error, 1)
		go func() {
			req, _ := newReq(t, ctx, "http://a.test/")
			resp, err := rt.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
		synctest.Wait() // the second request waits for a token
		if got := calls.Load(); got != 1 {
			t.Fatalf("calls before the token = %d; want 1", got)
		}
		time.Sleep(999 * time.Millisecond)
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("request finished before its token (err %v)", err)
		default:
		}
		start := time.Now()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := time.Since(start); got != time.Millisecond {
			t.Fatalf("the token came %v after 999ms; want 1ms later", got)
		}
		if got := calls.Load(); got != 2 {
			t.Fatalf("calls = %d; want 2", got)
		}
		evs := rec.Events()
		if len(evs) != 1 || evs[0].Kind != callctx.KindRateLimitWait || evs[0].Reason != "rate" ||
			evs[0].Delay != time.Second || evs[0].Key != "http://a.test:80" {
			t.Fatalf("events = %+v; want one rate wait of 1s for http://a.test:80", evs)
		}
	})
}

func TestRateWaitCanceledGivesTokenBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		lim := rate.NewLimiter(1, 1)
		rt := NewTransport(okNext(&calls), WithTokenBucket(lim))
		req, _ := newReq(t, context.Background(), "http://a.test/")
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		req2, body2 := newReq(t, ctx, "http://a.test/")
		go func() {
			_, err := rt.RoundTrip(req2)
			done <- err
		}()
		synctest.Wait() // the request waits for a token
		cancel()
		err = <-done
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v; want context.Canceled", err)
		}
		if !body2.closed.Load() {
			t.Fatal("request body not closed after a canceled wait")
		}
		// The reservation was given back: one second later a token is there.
		if got := lim.TokensAt(time.Now().Add(time.Second)); got < 0.999 {
			t.Fatalf("tokens a second later = %v; want 1 (reservation not canceled)", got)
		}
	})
}

// A wait that would pass the deadline fails at once: no sleeping then failing.
func TestRateWaitPastDeadlineFailsAtOnce(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	rt := NewTransport(srv.Client().Transport, WithRate(1, 1))
	defer rt.CloseIdleConnections()

	req, _ := newReq(t, context.Background(), srv.URL)
	first := time.Now() // the token is taken after this
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	req, b := newReq(t, ctx, srv.URL)
	start := time.Now()
	_, err = rt.RoundTrip(req)
	elapsed := time.Since(start)
	t.Logf("refusal took %v", elapsed)
	le := asLimit(t, err, ReasonRate)
	if elapsed > 50*time.Millisecond {
		t.Fatalf("refusal took %v; want it at once (< 5 ms nominal, 50 ms allowed on a loaded machine)", elapsed)
	}
	// The next token comes 1 s after the first was taken; however long the
	// first request took on a loaded machine, RetryAfter is at least what
	// is left of that second now, and at most the whole second.
	if least := time.Second - time.Since(first); le.RetryAfter < least || le.RetryAfter > time.Second {
		t.Fatalf("RetryAfter = %v; want within [%v, 1s]: the rest of the second since the first token", le.RetryAfter, least)
	}
	if !b.closed.Load() {
		t.Fatal("request body not closed on refusal")
	}
	if got := hits.Load(); got != 1 {
		t.Fatalf("server hits = %d; want 1", got)
	}
}

// 50/s with a burst of 5 over 2 s admits 5 + 100 requests at the server.
func TestRateOverTwoSeconds(t *testing.T) {
	if testing.Short() {
		t.Skip("real time: 2 s")
	}
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	rt := NewTransport(srv.Client().Transport, WithRate(50, 5))
	defer rt.CloseIdleConnections()
	client := &http.Client{Transport: rt}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var limited atomic.Int64
	for range 10 {
		wg.Go(func() {
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
				resp, err := client.Do(req)
				if err != nil {
					if errors.Is(err, ErrLimited) {
						limited.Add(1)
					}
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	got := hits.Load()
	t.Logf("admitted %d requests at the server in 2 s (rate 50/s, burst 5); %d refused as past the deadline", got, limited.Load())
	if got < 100 || got > 110 {
		t.Fatalf("server saw %d requests; want 100..110", got)
	}
}

// Concurrency 4 with 20 callers never shows more than 4 requests at the
// server, counting a request until its whole body has been read.
func TestConcurrencyNeverExceeded(t *testing.T) {
	var cur, maxSeen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := cur.Add(1)
		defer cur.Add(-1)
		for {
			m := maxSeen.Load()
			if n <= m || maxSeen.CompareAndSwap(m, n) {
				break
			}
		}
		// The body comes in two parts: the caller is still reading it while
		// the handler runs.
		w.Write([]byte(strings.Repeat("a", 512)))
		w.(http.Flusher).Flush()
		time.Sleep(5 * time.Millisecond)
		w.Write([]byte(strings.Repeat("b", 512)))
	}))
	defer srv.Close()
	var inBody, maxInBody atomic.Int64
	rt := NewTransport(srv.Client().Transport, WithConcurrency(4), WithQueue(20), WithQueueTimeout(10*time.Second))
	defer rt.CloseIdleConnections()

	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			for range 5 {
				req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
				resp, err := rt.RoundTrip(req)
				if err != nil {
					errs <- err
					return
				}
				n := inBody.Add(1)
				for {
					m := maxInBody.Load()
					if n <= m || maxInBody.CompareAndSwap(m, n) {
						break
					}
				}
				time.Sleep(2 * time.Millisecond) // a slow reader
				// Reading all but the last byte stops short of EOF (which
				// would release the slot), so the slot is held until Close,
				// after the count has gone down.
				b := make([]byte, 1023)
				_, err = io.ReadFull(resp.Body, b)
				inBody.Add(-1)
				resp.Body.Close()
				if err != nil {
					errs <- fmt.Errorf("body: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("max concurrent at the server %d, max bodies being read %d", maxSeen.Load(), maxInBody.Load())
	if got := maxSeen.Load(); got > 4 || got < 2 {
		t.Fatalf("max concurrent requests at the server = %d; want 2..4", got)
	}
	if got := maxInBody.Load(); got > 4 {
		t.Fatalf("max bodies in the caller's hands = %d; want <= 4", got)
	}
}

// holdNext returns responses whose bodies the test closes when it likes.
func TestQueueFullAndSlotHeldUntilBodyDone(t *testing.T) {
	var calls atomic.Int64
	rt := NewTransport(okNext(&calls), WithConcurrency(1), WithQueue(1))
	st := func() *semaphore { return rt.states.Get("http://a.test:80").sem }

	req, _ := newReq(t, context.Background(), "http://a.test/")
	resp1, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	// RoundTrip has returned but the body is open: the slot is still held.
	queued := make(chan error, 1)
	go func() {
		req, _ := newReq(t, context.Background(), "http://a.test/")
		resp, err := rt.RoundTrip(req)
		if err == nil {
			io.ReadAll(resp.Body) // EOF releases the slot without Close
		}
		queued <- err
	}()
	waitFor(t, "the second request to queue", func() bool { _, w := st().inUse(); return w == 1 })

	req3, body3 := newReq(t, context.Background(), "http://a.test/")
	start := time.Now()
	resp3, err := rt.RoundTrip(req3)
	if resp3 != nil {
		t.Fatal("response returned with a refusal")
	}
	le := asLimit(t, err, ReasonQueue)
	if time.Since(start) > 50*time.Millisecond {
		t.Fatalf("queue-full refusal took %v", time.Since(start))
	}
	if want := "ratelimit: concurrency limit for http://a.test:80: queue full"; le.Error() != want {
		t.Fatalf("message %q; want %q", le.Error(), want)
	}
	if !body3.closed.Load() {
		t.Fatal("request body not closed on queue-full refusal")
	}
	if got := calls.Load(); got != 1 {
		t.Fatalf("calls = %d; want 1 (refused request must not be sent)", got)
	}
	resp1.Body.Close()
	if err := <-queued; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "all slots free", func() bool { c, _ := st().inUse(); return c == 0 })
}

func TestQueueTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		rt := NewTransport(okNext(&calls), WithConcurrency(1), WithQueue(4), WithQueueTimeout(2*time.Second))
		req, _ := newReq(t, context.Background(), "http://a.test/")
		resp1, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp1.Body.Close()

		req2, body2 := newReq(t, context.Background(), "http://a.test/")
		done := make(chan error, 1)
		go func() {
			_, err := rt.RoundTrip(req2)
			done <- err
		}()
		synctest.Wait() // the request is queued
		start := time.Now()
		time.Sleep(1999 * time.Millisecond)
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("gave up before the queue timeout: %v", err)
		default:
		}
		le := asLimit(t, <-done, ReasonConcurrency)
		if got := time.Since(start); got != 2*time.Second {
			t.Fatalf("gave up after %v in the queue; want the 2s queue timeout", got)
		}
		if !strings.Contains(le.Error(), "concurrency limit for http://a.test:80") {
			t.Fatalf("message %q", le.Error())
		}
		if !body2.closed.Load() {
			t.Fatal("request body not closed on queue timeout")
		}
		if got := calls.Load(); got != 1 {
			t.Fatalf("calls = %d; want 1", got)
		}
		if c, w := rt.states.Get("http://a.test:80").sem.inUse(); c != 1 || w != 0 {
			t.Fatalf("slots %d, waiters %d; want 1, 0", c, w)
		}
	})
}

func TestSlotReleasedAtOnceOnError(t *testing.T) {
	fail := errors.New("dial failed")
	rt := NewTransport(contracttest.RoundTripFunc(func(*http.Request) (*http.Response, error) { return nil, fail }),
		WithConcurrency(1), WithQueue(0))
	for i := range 3 {
		req, _ := newReq(t, context.Background(), "http://a.test/")
		resp, err := rt.RoundTrip(req)
		if !errors.Is(err, fail) || resp != nil {
			t.Fatalf("#%d: (%v, %v); want (nil, dial failed): slot not released on error", i, resp, err)
		}
	}
}

func TestSemaphoreFIFO(t *testing.T) {
	s := newSemaphore(1, 10)
	if _, ok, _ := s.enter(); !ok {
		t.Fatal("first enter did not get the slot")
	}
	var order []int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 5 {
		w, ok, full := s.enter()
		if ok || full {
			t.Fatalf("#%d: ok=%v full=%v; want queued", i, ok, full)
		}
		wg.Go(func() {
			<-ready(w)
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			s.release()
		})
	}
	// A newcomer must not jump the queue when a slot frees.
	s.release()
	wg.Wait()
	if want := []int{0, 1, 2, 3, 4}; !reflect.DeepEqual(order, want) {
		t.Fatalf("grant order %v; want %v", order, want)
	}
	if c, w := s.inUse(); c != 0 || w != 0 {
		t.Fatalf("cur %d waiting %d; want 0 0", c, w)
	}
}

func TestSemaphoreLeaveAfterGrantPassesSlotOn(t *testing.T) {
	s := newSemaphore(1, 2)
	s.enter()
	w1, _, _ := s.enter()
	w2, _, _ := s.enter()
	s.release() // granted to w1
	s.leave(w1) // w1 gave up anyway: the slot must go to w2
	select {
	case <-ready(w2):
	default:
		t.Fatal("slot not passed on to the next waiter")
	}
	s.release()
	if c, w := s.inUse(); c != 0 || w != 0 {
		t.Fatalf("cur %d waiting %d; want 0 0", c, w)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("release of an unheld slot did not panic")
		}
	}()
	s.release()
}

// A 429 with Retry-After: 1 stops all callers of that key for about a
// second, measured by the server's clock.
func TestPushbackPausesKey(t *testing.T) {
	var mu sync.Mutex
	var arrivals []time.Time
	var first429 time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if first429.IsZero() {
			first429 = time.Now()
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, "slow down")
			return
		}
		arrivals = append(arrivals, time.Now())
	}))
	defer srv.Close()
	var paused atomic.Int64
	rt := NewTransport(srv.Client().Transport, WithObserver(Observer{
		Pushback: func(_ context.Context, _ string, d time.Duration) { paused.Store(int64(d)) },
	}))
	defer rt.CloseIdleConnections()

	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The response that carried the pushback is returned unchanged.
	if resp.StatusCode != 429 || string(b) != "slow down" || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("pushback response changed: %d %q %q", resp.StatusCode, b, resp.Header.Get("Retry-After"))
	}
	if time.Duration(paused.Load()) != time.Second {
		t.Fatalf("observer saw a pause of %v; want 1s", time.Duration(paused.Load()))
	}

	// A caller whose deadline ends within the pause fails at once.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	req, body := newReq(t, ctx, srv.URL)
	start := time.Now()
	_, err = rt.RoundTrip(req)
	cancel()
	le := asLimit(t, err, ReasonPushback)
	if time.Since(start) > 50*time.Millisecond || le.RetryAfter <= 0 || le.RetryAfter > time.Second {
		t.Fatalf("pushback refusal after %v with RetryAfter %v", time.Since(start), le.RetryAfter)
	}
	if !body.closed.Load() {
		t.Fatal("request body not closed")
	}

	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(arrivals) != 5 {
		t.Fatalf("arrivals = %d; want 5", len(arrivals))
	}
	for _, at := range arrivals {
		gap := at.Sub(first429)
		t.Logf("request arrived %v after the 429", gap)
		if gap < 950*time.Millisecond || gap > 1500*time.Millisecond {
			t.Fatalf("request arrived %v after the 429; want about 1s", gap)
		}
	}
}

// TestPushbackCappedAndOnlyFor429And503: Retry-After and the reset fields
// pause a key only on 429 and 503; the RateLimit field's spent quota (r=0)
// pauses it on any status, since a success may say the next request will be
// refused.
func TestPushbackCappedAndOnlyFor429And503(t *testing.T) {
	// Each subtest's bubble first moves its clock to epoch, so the table
	// can hold an HTTP date relative to it.
	epoch := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		status int
		header string
		value  string
		opts   []Option
		want   time.Duration
	}{
		{429, "Retry-After", "3600", nil, DefaultMaxPushback},
		{503, "Retry-After", "2", nil, 2 * time.Second},
		{503, "RateLimit-Reset", "7", nil, 7 * time.Second},
		{429, "Retry-After", epoch.Add(4 * time.Second).Format(http.TimeFormat), nil, 4 * time.Second},
		{429, "Retry-After", "60", []Option{WithMaxPushback(5 * time.Second)}, 5 * time.Second},
		{429, "Retry-After", "60", []Option{WithMaxPushback(0)}, 0},
		{500, "Retry-After", "2", nil, 0},
		{429, "Retry-After", "soon", nil, 0},
		{200, "Retry-After", "2", nil, 0},
		{200, "RateLimit-Reset", "2", nil, 0},
		{200, "RateLimit", `"default";r=0;t=2`, nil, 2 * time.Second},
		{200, "RateLimit", `"default";r=3;t=2`, nil, 0},
		{204, "RateLimit", `"burst";r=5;t=1, "daily";r=0;t=40`, nil, 30 * time.Second},
		{200, "RateLimit", `"default";r=0;t=2`, []Option{WithMaxPushback(0)}, 0},
		{200, "RateLimit", `default;r=0;t=2`, nil, 0},
		{503, "RateLimit", `"default";r=0;t=4`, nil, 4 * time.Second},
	} {
		t.Run(fmt.Sprintf("%d_%s_%s", tc.status, tc.header, tc.value), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				time.Sleep(time.Until(epoch))
				next := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
					h := http.Header{}
					h.Set(tc.header, tc.value)
					return &http.Response{StatusCode: tc.status, Header: h, Body: http.NoBody}, nil
				})
				rt := NewTransport(next, tc.opts...)
				req, _ := newReq(t, context.Background(), "http://a.test/")
				resp, err := rt.RoundTrip(req)
				if err != nil || resp.StatusCode != tc.status {
					t.Fatalf("(%v, %v)", resp, err)
				}
				var got time.Duration
				if u := rt.states.Get("http://a.test:80").pausedUntil.Load(); u != 0 {
					got = time.Until(time.Unix(0, u))
				}
				if got != tc.want {
					t.Fatalf("pause = %v; want %v", got, tc.want)
				}
			})
		})
	}
}

// A request waiting out a pause goes as soon as the pause ends.
func TestPushbackWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		first := true
		next := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			calls.Add(1)
			if first {
				first = false
				return &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"3"}}, Body: http.NoBody}, nil
			}
			return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody}, nil
		})
		rec := &contracttest.Recorder{}
		rt := NewTransport(next)
		ctx := callctx.WithRecorder(context.Background(), rec)
		req, _ := newReq(t, ctx, "http://a.test/")
		if _, err := rt.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			req, _ := newReq(t, ctx, "http://a.test/")
			_, err := rt.RoundTrip(req)
			done <- err
		}()
		synctest.Wait() // the request waits out the pause
		start := time.Now()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := time.Since(start); got != 3*time.Second {
			t.Fatalf("the paused request went after %v; want 3s, when the pause ended", got)
		}
		evs := rec.Events()
		if len(evs) != 1 || evs[0].Kind != callctx.KindRateLimitWait || evs[0].Reason != "pushback" || evs[0].Delay != 3*time.Second {
			t.Fatalf("events %+v; want one pushback wait of 3s", evs)
		}
	})
}

func TestKeysAreIndependent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		next := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			calls.Add(1)
			if r.URL.Host == "a.test" {
				return &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"10"}}, Body: io.NopCloser(strings.NewReader("x"))}, nil
			}
			return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("x"))}, nil
		})
		rt := NewTransport(next, WithRate(1, 1), WithConcurrency(1), WithQueue(0))
		// a.test: token spent, slot held (body open), paused for 10 s.
		req, _ := newReq(t, context.Background(), "http://a.test/")
		respA, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer respA.Body.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ = newReq(t, ctx, "http://a.test/")
		if _, err := rt.RoundTrip(req); !errors.Is(err, ErrLimited) {
			t.Fatalf("second request to a.test: %v; want ErrLimited", err)
		}
		// b.test and a.test on another port are unaffected.
		for _, u := range []string{"http://b.test/", "http://a.test:8080/"} {
			req, _ := newReq(t, context.Background(), u)
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatalf("%s: %v", u, err)
			}
			resp.Body.Close()
		}
		if got := calls.Load(); got != 3 {
			t.Fatalf("calls = %d; want 3", got)
		}
	})
}

func TestKeyMapBounded(t *testing.T) {
	var calls atomic.Int64
	for _, tc := range []struct {
		opts  []Option
		max   int
		hosts int
	}{
		{nil, DefaultMaxKeys, 100_000},
		{[]Option{WithMaxKeys(10)}, 10, 10_000},
	} {
		rt := NewTransport(okNext(&calls), append(tc.opts, WithRate(100, 10), WithConcurrency(4))...)
		for i := range tc.hosts {
			req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://h%d.test/", i), nil)
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		if got := rt.states.Len(); got > tc.max {
			t.Fatalf("keys held = %d; want <= %d", got, tc.max)
		}
	}
}

func TestWithKey(t *testing.T) {
	var calls atomic.Int64
	rt := NewTransport(okNext(&calls), WithRate(1, 1), WithKey(func(*http.Request) string { return "all" }))
	req, _ := newReq(t, context.Background(), "http://a.test/")
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	req, _ = newReq(t, ctx, "http://b.test/")
	_, err = rt.RoundTrip(req)
	if le := asLimit(t, err, ReasonRate); le.Key != "all" {
		t.Fatalf("Key = %q; want all", le.Key)
	}
}

func TestSharedLimiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		var asked atomic.Int64
		degraded := errors.New("store down")
		var fallbacks, rejects atomic.Int64
		lim := LimiterFunc(func(ctx context.Context, key string) (Result, error) {
			n := asked.Add(1)
			switch {
			case key == "http://closed.test:80":
				return Result{}, degraded
			case key == "http://never.test:80":
				return Result{RetryAfter: time.Hour}, nil
			case key == "http://open.test:80":
				return Result{Allowed: true, Fallback: degraded}, nil
			case n < 3:
				return Result{RetryAfter: 100 * time.Millisecond}, nil
			}
			return Result{Allowed: true}, nil
		})
		rt := NewTransport(okNext(&calls), WithSharedLimiter(lim), WithObserver(Observer{
			Fallback: func(_ context.Context, key string, err error) {
				if errors.Is(err, degraded) {
					fallbacks.Add(1)
				}
			},
			Reject: func(context.Context, string, Reason) { rejects.Add(1) },
		}))

		// Refused twice with RetryAfter 100ms, then allowed.
		done := make(chan error, 1)
		go func() {
			req, _ := newReq(t, context.Background(), "http://a.test/")
			resp, err := rt.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
		start := time.Now()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got, n := time.Since(start), asked.Load(); got != 200*time.Millisecond || n != 3 {
			t.Fatalf("allowed after %v and %d asks; want two waits of 100ms, then the third ask", got, n)
		}

		// Fail closed: the limiter's error, wrapped in a *LimitError.
		req, body := newReq(t, context.Background(), "http://closed.test/")
		_, err := rt.RoundTrip(req)
		le := asLimit(t, err, ReasonRate)
		if !errors.Is(err, degraded) || !body.closed.Load() {
			t.Fatalf("err %v (%v); want it to wrap the limiter's error, body closed", err, le)
		}
		// Past the deadline: refused at once.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		req, _ = newReq(t, ctx, "http://never.test/")
		_, err = rt.RoundTrip(req)
		if le := asLimit(t, err, ReasonRate); le.RetryAfter != time.Hour {
			t.Fatalf("RetryAfter = %v; want 1h", le.RetryAfter)
		}
		// Fail open: reported to the observer, and as a call event, so the
		// degraded mode shows in the tracing layers' metrics too.
		rec := &contracttest.Recorder{}
		req, _ = newReq(t, callctx.WithRecorder(context.Background(), rec), "http://open.test/")
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if fallbacks.Load() != 1 || rejects.Load() != 2 {
			t.Fatalf("fallbacks %d rejects %d; want 1 2", fallbacks.Load(), rejects.Load())
		}
		if evs := rec.Events(); len(evs) != 1 || evs[0].Kind != callctx.KindRateLimitFallback ||
			evs[0].Reason != "shared_limiter_unreachable" || evs[0].Key != "http://open.test:80" {
			t.Fatalf("events %+v; want one ratelimit_fallback for http://open.test:80", evs)
		}
		if calls.Load() != 2 {
			t.Fatalf("calls = %d; want 2", calls.Load())
		}
	})
}

func TestObserverAndEvents(t *testing.T) {
	var calls atomic.Int64
	var mu sync.Mutex
	var log []string
	obs := Observer{
		Wait: func(_ context.Context, key string, r Reason, d time.Duration) {
			mu.Lock()
			log = append(log, fmt.Sprintf("wait %s %s", key, r))
			mu.Unlock()
		},
		Reject: func(_ context.Context, key string, r Reason) {
			mu.Lock()
			log = append(log, fmt.Sprintf("reject %s %s", key, r))
			mu.Unlock()
		},
		InFlight: func(_ context.Context, key string, d int) {
			mu.Lock()
			log = append(log, fmt.Sprintf("inflight %s %+d", key, d))
			mu.Unlock()
		},
	}
	rec := &contracttest.Recorder{}
	ctx := callctx.WithAttempt(callctx.WithRecorder(context.Background(), rec), 2)
	rt := NewTransport(okNext(&calls), WithConcurrency(1), WithQueue(0), WithObserver(obs))
	req, _ := newReq(t, ctx, "http://a.test/")
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	req, _ = newReq(t, ctx, "http://a.test/")
	if _, err := rt.RoundTrip(req); err == nil {
		t.Fatal("want a refusal")
	}
	resp.Body.Close()
	resp.Body.Close() // a second Close must not release twice
	want := []string{"inflight http://a.test:80 +1", "reject http://a.test:80 queue", "inflight http://a.test:80 -1"}
	if !reflect.DeepEqual(log, want) {
		t.Fatalf("observer saw %q; want %q", log, want)
	}
	evs := rec.Events()
	if len(evs) != 1 || evs[0].Kind != callctx.KindRateLimitRejected || evs[0].Reason != "queue" || evs[0].Attempt != 2 || evs[0].Key != "http://a.test:80" {
		t.Fatalf("events %+v", evs)
	}
}

// The context rules of the limits; the contract suite (contract_test.go)
// checks the rest of the RoundTripper contract.
func TestContextRules(t *testing.T) {
	t.Run("canceled context is not sent", func(t *testing.T) {
		var calls atomic.Int64
		rt := NewTransport(okNext(&calls))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		req, body := newReq(t, ctx, "http://a.test/")
		resp, err := rt.RoundTrip(req)
		if resp != nil || !errors.Is(err, context.Canceled) || !body.closed.Load() || calls.Load() != 0 {
			t.Fatalf("(%v, %v), body closed %v, calls %d", resp, err, body.closed.Load(), calls.Load())
		}
	})
	t.Run("context ends while queued", func(t *testing.T) {
		// A slot may free up at any moment, so the wait for one is not
		// skipped for the deadline: it ends with it.
		synctest.Test(t, func(t *testing.T) {
			var calls atomic.Int64
			rt := NewTransport(okNext(&calls), WithConcurrency(1))
			req, _ := newReq(t, context.Background(), "http://a.test/")
			resp1, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp1.Body.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			req, body := newReq(t, ctx, "http://a.test/")
			resp, err := rt.RoundTrip(req)
			if resp != nil || !errors.Is(err, context.DeadlineExceeded) || !body.closed.Load() {
				t.Fatalf("(%v, %v), body closed %v", resp, err, body.closed.Load())
			}
			if c, w := rt.states.Get("http://a.test:80").sem.inUse(); c != 1 || w != 0 {
				t.Fatalf("slots %d waiters %d; want 1 0", c, w)
			}
		})
	})
}

func TestNilNext(t *testing.T) {
	var rt http.RoundTripper = Middleware(WithRate(1, 1))(nil)
	if rt.(*Transport).next != http.DefaultTransport {
		t.Fatal("nil next is not http.DefaultTransport")
	}
}

func TestOptionPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"WithRate(0, 1)":          func() { WithRate(0, 1) },
		"WithRate(1, 0)":          func() { WithRate(1, 0) },
		"WithConcurrency(-1)":     func() { WithConcurrency(-1) },
		"WithQueue(-1)":           func() { WithQueue(-1) },
		"WithQueueTimeout(0)":     func() { WithQueueTimeout(0) },
		"WithMaxPushback(-1)":     func() { WithMaxPushback(-1) },
		"WithMaxKeys(0)":          func() { WithMaxKeys(0) },
		"WithRate(NaN-ish -1, 1)": func() { WithRate(-1, 1) },
	} {
		func() {
			defer func() {
				r := recover()
				if r == nil || !strings.HasPrefix(fmt.Sprint(r), "ratelimit: With") {
					t.Errorf("%s: panic %v; want a ratelimit: With... message", name, r)
				}
			}()
			f()
		}()
	}
}

func TestLimitErrorMessage(t *testing.T) {
	cause := errors.New("dial tcp: refused")
	for _, tc := range []struct {
		err  *LimitError
		want string
	}{
		{&LimitError{Key: "k", Reason: ReasonQueue, detail: "queue full"}, "ratelimit: concurrency limit for k: queue full"},
		{&LimitError{Key: "k", Reason: ReasonRate, Err: cause}, "ratelimit: rate limit for k: dial tcp: refused"},
		{&LimitError{Key: "k", Reason: ReasonRate, Err: cause, detail: "shared limiter failed"}, "ratelimit: rate limit for k: shared limiter failed: dial tcp: refused"},
		{&LimitError{Key: "k", Reason: ReasonPushback}, "ratelimit: server pushback for k"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got %q; want %q", got, tc.want)
		}
	}
}

// A panic in next must not keep the concurrency slot: net/http's server
// recovers handler panics, so a leaked slot would refuse the key for good.
func TestPanicInNextReleasesSlot(t *testing.T) {
	calls := 0
	next := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		calls++
		if calls == 1 {
			panic("boom")
		}
		return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
	})
	tr := NewTransport(next, WithConcurrency(1), WithQueue(0))
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the panic did not propagate")
			}
		}()
		tr.RoundTrip(httptest.NewRequest("GET", "http://x.test/", nil))
	}()
	resp, err := tr.RoundTrip(httptest.NewRequest("GET", "http://x.test/", nil))
	if err != nil {
		t.Fatalf("second request refused after a panic: %v", err)
	}
	resp.Body.Close()
}
