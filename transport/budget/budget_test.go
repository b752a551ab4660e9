package budget

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/outboundhttp/outbound/internal/body"
	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/internal/contracttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// trackBody records whether it was closed.
type trackBody struct {
	io.Reader
	mu     sync.Mutex
	closed bool
}

func (b *trackBody) Close() error { b.mu.Lock(); b.closed = true; b.mu.Unlock(); return nil }
func (b *trackBody) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

func newReq(t testing.TB, ctx context.Context) (*http.Request, *trackBody) {
	t.Helper()
	b := &trackBody{Reader: strings.NewReader("payload")}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://upstream.test/x", b)
	if err != nil {
		t.Fatal(err)
	}
	return req, b
}

// ok answers 200 with a body that must be read or closed, and reports the
// context it was given.
func ok(got *context.Context) contracttest.RoundTripFunc {
	return func(r *http.Request) (*http.Response, error) {
		*got = r.Context()
		r.Body.Close()
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("hello")), Request: r}, nil
	}
}

func TestDeadlineIsMinOfParentAndTotal(t *testing.T) {
	tests := []struct {
		name   string
		parent time.Duration // 0: no parent deadline
		want   time.Duration
	}{
		{"no parent deadline", 0, time.Second},
		{"parent later", time.Hour, time.Second},
		{"parent earlier", 300 * time.Millisecond, 300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now() // the bubble's clock stands still while nothing waits
				ctx := context.Background()
				if tt.parent > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithDeadline(ctx, start.Add(tt.parent))
					defer cancel()
				}
				var got context.Context
				req, _ := newReq(t, ctx)
				resp, err := NewTransport(ok(&got), WithTotal(time.Second)).RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				dl, has := got.Deadline()
				if !has || !dl.Equal(start.Add(tt.want)) {
					t.Errorf("deadline %v (set %v); want start+%v", dl.Sub(start), has, tt.want)
				}
			})
		})
	}
}

func TestContextReleasedOnBodyDoneNotBefore(t *testing.T) {
	for _, tc := range []struct {
		name string
		done func(*http.Response)
	}{
		{"close unread", func(r *http.Response) { r.Body.Close() }},
		{"read to EOF", func(r *http.Response) { io.ReadAll(r.Body) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got context.Context
			req, _ := newReq(t, context.Background())
			resp, err := NewTransport(ok(&got)).RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			if got.Err() != nil {
				t.Fatalf("context done when RoundTrip returned: %v", got.Err())
			}
			tc.done(resp)
			if !errors.Is(got.Err(), context.Canceled) {
				t.Errorf("after body done, context err = %v; want context.Canceled (timer released)", got.Err())
			}
			resp.Body.Close()
		})
	}
}

func TestContextReleasedAtOnceOnErrorAndNoBody(t *testing.T) {
	var got context.Context
	rt := NewTransport(contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		got = r.Context()
		r.Body.Close()
		return nil, errors.New("dial failed")
	}))
	req, _ := newReq(t, context.Background())
	resp, err := rt.RoundTrip(req)
	if resp != nil || err == nil || err.Error() != "dial failed" {
		t.Fatalf("got (%v, %v); want (nil, dial failed) unchanged", resp, err)
	}
	if errors.Is(err, ErrExhausted) {
		t.Error("plain error matches ErrExhausted")
	}
	if got.Err() == nil {
		t.Error("context not canceled after an error return")
	}

	rt = NewTransport(contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		got = r.Context()
		return &http.Response{StatusCode: 204, Body: http.NoBody}, nil
	}))
	req, _ = newReq(t, context.Background())
	resp, err = rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if got.Err() == nil {
		t.Error("context not canceled for a response without a body")
	}
	resp.Body.Close()
}

// A body a layer below read whole into memory (the retry layer's) needs no
// context to be read: the call's context is released when RoundTrip
// returns, which spares the body wrapper and stops the timer early, and the
// caller still reads every byte afterwards.
func TestContextReleasedAtOnceForInMemoryBody(t *testing.T) {
	var got context.Context
	rt := NewTransport(contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		got = r.Context()
		r.Body.Close()
		return &http.Response{StatusCode: 200, Body: body.NewInMemory([]byte("hello")), Request: r}, nil
	}))
	req, _ := newReq(t, context.Background())
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(got.Err(), context.Canceled) {
		t.Errorf("context err = %v when RoundTrip returned an in-memory body; want context.Canceled (released)", got.Err())
	}
	if _, ok := resp.Body.(body.InMemory); !ok {
		t.Errorf("body is %T; want the in-memory body unwrapped", resp.Body)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != "hello" {
		t.Fatalf("read %q, %v after the release; want hello, nil", b, err)
	}
	resp.Body.Close()
}

func TestFailFast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &contracttest.Recorder{}
		for _, tc := range []struct {
			left time.Duration
			sent bool
		}{
			{5 * time.Millisecond, false},
			{9 * time.Millisecond, false},
			{10 * time.Millisecond, true},
			{time.Second, true},
		} {
			// Only tc.left remains before the parent's deadline, exactly: the
			// bubble's clock does not move until something waits.
			ctx, cancel := context.WithDeadline(callctx.WithRecorder(context.Background(), rec), time.Now().Add(tc.left))
			defer cancel()
			sent := false
			rt := NewTransport(contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
				sent = true
				r.Body.Close()
				return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
			}))
			req, b := newReq(t, ctx)
			resp, err := rt.RoundTrip(req)
			if sent != tc.sent {
				t.Errorf("%v left: sent = %v; want %v", tc.left, sent, tc.sent)
			}
			if !b.isClosed() {
				t.Errorf("%v left: request body not closed", tc.left)
			}
			if tc.sent {
				if err != nil {
					t.Errorf("%v left: %v", tc.left, err)
				} else {
					resp.Body.Close()
				}
				continue
			}
			if resp != nil {
				t.Errorf("%v left: response with an error", tc.left)
			}
			var ee *ExhaustedError
			if !errors.Is(err, ErrExhausted) || !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ee) {
				t.Fatalf("%v left: err %v; want an *ExhaustedError matching ErrExhausted and DeadlineExceeded", tc.left, err)
			}
			if !ee.LocalRefusal() || ee.Remaining != tc.left {
				t.Errorf("%v left: LocalRefusal %v, Remaining %v; want true, %v", tc.left, ee.LocalRefusal(), ee.Remaining, tc.left)
			}
			if !strings.HasPrefix(err.Error(), "budget: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		}
		evs := rec.Events()
		if len(evs) != 2 || evs[0].Kind != callctx.KindBudgetExhausted || evs[0].Reason != "min_remaining" || evs[0].Delay != 5*time.Millisecond {
			t.Errorf("events %+v; want two budget_exhausted/min_remaining, the first with Delay 5ms", evs)
		}
	})
}

// blockUntilDone is a next RoundTripper that waits for the context, as a
// network round trip to a slow upstream does, and returns its cause, as
// net/http's Transport does.
func blockUntilDone(r *http.Request) (*http.Response, error) {
	r.Body.Close()
	<-r.Context().Done()
	return nil, context.Cause(r.Context())
}

func TestDeadlineDuringAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &contracttest.Recorder{}
		ctx := callctx.WithRecorder(context.Background(), rec)
		req, _ := newReq(t, ctx)
		resp, err := NewTransport(contracttest.RoundTripFunc(blockUntilDone), WithTotal(20*time.Millisecond)).RoundTrip(req)
		var ee *ExhaustedError
		if resp != nil || !errors.As(err, &ee) || !errors.Is(err, ErrExhausted) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got (%v, %v); want an *ExhaustedError", resp, err)
		}
		if ee.LocalRefusal() || ee.Budget != 20*time.Millisecond {
			t.Errorf("LocalRefusal %v, Budget %v; want false, 20ms", ee.LocalRefusal(), ee.Budget)
		}
		if errors.Is(err, context.Canceled) {
			t.Error("budget exhaustion matches context.Canceled")
		}
		if evs := rec.Events(); len(evs) != 1 || evs[0].Reason != "deadline" {
			t.Errorf("events %+v; want one budget_exhausted/deadline", evs)
		}
	})
}

func TestCallerContextIsNotOurs(t *testing.T) {
	t.Run("canceled during attempt", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(10*time.Millisecond, cancel)
			req, _ := newReq(t, ctx)
			_, err := NewTransport(contracttest.RoundTripFunc(blockUntilDone)).RoundTrip(req)
			if !errors.Is(err, context.Canceled) || errors.Is(err, ErrExhausted) {
				t.Errorf("err %v; want context.Canceled, not ErrExhausted", err)
			}
		})
	})
	t.Run("canceled before", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			sent := false
			req, b := newReq(t, ctx)
			_, err := NewTransport(contracttest.RoundTripFunc(func(*http.Request) (*http.Response, error) { sent = true; return nil, nil })).RoundTrip(req)
			if sent || !b.isClosed() || !errors.Is(err, context.Canceled) || errors.Is(err, ErrExhausted) {
				t.Errorf("sent %v, body closed %v, err %v; want not sent, closed, context.Canceled", sent, b.isClosed(), err)
			}
		})
	})
	t.Run("canceled with cause", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(context.Background())
			cancel(errors.New("user left"))
			req, _ := newReq(t, ctx)
			_, err := NewTransport(nil).RoundTrip(req)
			if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "user left") {
				t.Errorf("err %v; want context.Canceled mentioning the cause", err)
			}
		})
	})
	t.Run("parent deadline fires first", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			req, _ := newReq(t, ctx)
			_, err := NewTransport(contracttest.RoundTripFunc(blockUntilDone), WithTotal(time.Hour)).RoundTrip(req)
			if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrExhausted) {
				t.Errorf("err %v; want plain context.DeadlineExceeded (the caller's deadline)", err)
			}
		})
	})
	t.Run("inner error hides the cancel", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := newReq(t, ctx)
			_, err := NewTransport(contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
				cancel()
				return nil, errors.New("net/http: request canceled")
			})).RoundTrip(req)
			if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "budget: ") {
				t.Errorf("err %v; want a budget error matching context.Canceled", err)
			}
		})
	})
}

func TestNestedBudgets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &contracttest.Recorder{}
		ctx := callctx.WithRecorder(context.Background(), rec)
		inner := NewTransport(contracttest.RoundTripFunc(blockUntilDone), WithTotal(time.Hour))
		outer := NewTransport(inner, WithTotal(20*time.Millisecond))
		req, _ := newReq(t, ctx)
		_, err := outer.RoundTrip(req)
		var ee *ExhaustedError
		if !errors.As(err, &ee) || ee.Budget != 20*time.Millisecond || ee.Refused {
			t.Fatalf("err %v; want the outer 20ms budget exhausted during the attempt", err)
		}
		if evs := rec.Events(); len(evs) != 1 {
			t.Errorf("events %+v; want exactly one", evs)
		}

		// An expired outer budget seen by an inner Transport is a refusal.
		ctx, cancel := context.WithDeadlineCause(context.Background(), time.Now().Add(-time.Second), &ExhaustedError{Budget: time.Second})
		defer cancel()
		req, b := newReq(t, ctx)
		_, err = inner.RoundTrip(req)
		if !errors.As(err, &ee) || !ee.Refused || !b.isClosed() {
			t.Errorf("err %v; want a refusal matching ErrExhausted, body closed", err)
		}
	})
}

func TestRemaining(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		if d, ok := Remaining(context.Background()); ok || d != 0 {
			t.Errorf("no deadline: got (%v, %v); want (0, false)", d, ok)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		if d, ok := Remaining(ctx); !ok || d != time.Hour {
			t.Errorf("one hour: got (%v, %v); want (1h, true), exactly on the bubble's clock", d, ok)
		}
		ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		if d, ok := Remaining(ctx); !ok || d != 0 {
			t.Errorf("passed deadline: got (%v, %v); want (0, true)", d, ok)
		}
	})
}

func TestOptionPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"WithTotal(0)":                  func() { WithTotal(0) },
		"WithTotal(-1)":                 func() { WithTotal(-1) },
		"WithMinRemaining(-1)":          func() { WithMinRemaining(-1) },
		"WithSafetyMargin(-1)":          func() { WithSafetyMargin(-1) },
		"WithMaxInbound(0)":             func() { WithMaxInbound(0) },
		"WithDeadlineHeader(bad)":       func() { WithDeadlineHeader("a b") },
		"WithDeadlineHeader(empty)":     func() { WithDeadlineHeader("") },
		"min not below total":           func() { NewTransport(nil, WithTotal(5*time.Millisecond)) },
		"min not below total (Handler)": func() { Handler(nil, WithMinRemaining(time.Minute)) },
	} {
		func() {
			defer func() {
				r := recover()
				if s, _ := r.(string); !strings.HasPrefix(s, "budget: ") {
					t.Errorf("%s: recover() = %v; want a budget panic", name, r)
				}
			}()
			f()
		}()
	}
}

// The caller's request, CloseIdleConnections and a next that returns (nil,
// nil) are checked by the contract suite (contract_test.go).
func TestNilNext(t *testing.T) {
	if NewTransport(nil).next != http.DefaultTransport || NewDeadlineTransport(nil).next != http.DefaultTransport {
		t.Error("nil next is not http.DefaultTransport")
	}
	if Middleware()(nil).(*Transport).next != http.DefaultTransport || DeadlineMiddleware()(nil).(*PropagateTransport).next != http.DefaultTransport {
		t.Error("Middleware: nil next is not http.DefaultTransport")
	}
}

// A redirect hop (req.Response set by http.Client) inherits the previous
// hop's budget deadline instead of starting a fresh budget — and not the
// shorter per-attempt deadline a retry layer below set on the request that
// ended up in resp.Request.
func TestRedirectHopInheritsDeadline(t *testing.T) {
	var seen []time.Time
	next := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		dl, _ := r.Context().Deadline()
		seen = append(seen, dl)
		// As retry.WithAttemptTimeout does: the innermost request, which
		// net/http puts in resp.Request, has a shorter deadline.
		actx, cancel := context.WithTimeout(r.Context(), 50*time.Millisecond)
		defer cancel()
		return &http.Response{StatusCode: 302, Body: http.NoBody, Request: r.WithContext(actx)}, nil
	})
	tr := NewTransport(next, WithTotal(10*time.Second))
	resp1, err := tr.RoundTrip(httptest.NewRequest("GET", "http://a.test/start", nil))
	if err != nil {
		t.Fatal(err)
	}
	resp1.Body.Close()
	hop := httptest.NewRequest("GET", "http://a.test/next", nil)
	hop.Response = resp1
	resp2, err := tr.RoundTrip(hop)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if len(seen) != 2 || !seen[1].Equal(seen[0]) {
		t.Fatalf("deadlines %v; want the second hop to keep the first hop's budget deadline", seen)
	}
}

// The cause a layer below hands back inside its own error is not repeated.
func TestExhaustedMessageSaysItOnce(t *testing.T) {
	cause := &ExhaustedError{Budget: 300 * time.Millisecond, cause: true}
	e := &ExhaustedError{Budget: 300 * time.Millisecond, Err: fmt.Errorf("retry: 1 attempt: %w", cause)}
	if got, want := e.Error(), "budget: 300ms budget exhausted (retry: 1 attempt)"; got != want {
		t.Fatalf("Error() = %q; want %q", got, want)
	}
	other := &ExhaustedError{Budget: time.Second, Err: errors.New("read tcp: i/o timeout")}
	if got, want := other.Error(), "budget: 1s budget exhausted: read tcp: i/o timeout"; got != want {
		t.Fatalf("Error() = %q; want %q", got, want)
	}
}

// A refusal costs one allocation, its *ExhaustedError (issue 18: a local
// refusal is cheap), whether the binding deadline is ours or the caller's.
func TestRefusalAllocatesOnlyItsError(t *testing.T) {
	rt := NewTransport(contracttest.RoundTripFunc(func(*http.Request) (*http.Response, error) {
		t.Fatal("refused request sent")
		return nil, nil
	}), WithTotal(2*time.Hour), WithMinRemaining(time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, "GET", "http://a.test/", nil)
	if n := testing.AllocsPerRun(100, func() {
		if _, err := rt.RoundTrip(req); !errors.Is(err, ErrExhausted) {
			t.Fatalf("RoundTrip error %v; want ErrExhausted", err)
		}
	}); n > 1 {
		t.Errorf("a refusal allocates %v times; want 1", n)
	}
}

// TestDeadlineSeenWithoutDone: a layer below that never waits on Done (the
// cancelable context is then not made) still finds the budget spent through
// Err and context.Cause once the deadline has passed, and the call fails with
// ErrExhausted, as with a layer that waits.
func TestDeadlineSeenWithoutDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var err, cause error
		rt := NewTransport(contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			if e := r.Context().Err(); e != nil {
				return nil, e
			}
			time.Sleep(30 * time.Millisecond)
			err, cause = r.Context().Err(), context.Cause(r.Context())
			return nil, err
		}), WithTotal(20*time.Millisecond))
		req, _ := newReq(t, context.Background())
		_, got := rt.RoundTrip(req)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Err after the deadline: %v; want context.DeadlineExceeded", err)
		}
		if _, ok := errors.AsType[*ExhaustedError](cause); !ok {
			t.Errorf("Cause after the deadline: %v; want an *ExhaustedError", cause)
		}
		if !errors.Is(got, ErrExhausted) {
			t.Errorf("RoundTrip error %v; want ErrExhausted", got)
		}
	})
}

// TestCallerCancelWithoutDone: before the cancelable context is made, the
// caller's cancellation is what Err and Cause report.
func TestCallerCancelWithoutDone(t *testing.T) {
	parent, cancel := context.WithCancelCause(context.Background())
	left := errors.New("user left")
	var err, cause error
	rt := NewTransport(contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		cancel(left)
		err, cause = r.Context().Err(), context.Cause(r.Context())
		return nil, err
	}))
	req, _ := newReq(t, parent)
	if _, got := rt.RoundTrip(req); !errors.Is(got, context.Canceled) || errors.Is(got, ErrExhausted) {
		t.Errorf("RoundTrip error %v; want context.Canceled, not ErrExhausted", got)
	}
	if !errors.Is(err, context.Canceled) || cause != left {
		t.Errorf("Err %v, Cause %v; want context.Canceled, %v", err, cause, left)
	}
}

// TestOwnDeadlineAllocations: a call under the Transport's own deadline
// allocates its context and the request copy carrying it (issue 18), and the
// deadline's context only when a layer below waits on Done, as net/http's
// Transport does: then context.WithDeadlineCause's 4 and the Done channel,
// as before.
func TestOwnDeadlineAllocations(t *testing.T) {
	resp := &http.Response{StatusCode: 200, Body: http.NoBody}
	req := httptest.NewRequest("GET", "http://a.test/", nil)
	for _, tc := range []struct {
		name string
		next func(*http.Request)
		want float64
	}{
		{"nothing waits", func(*http.Request) {}, 2},
		{"a layer below waits on Done", func(r *http.Request) { _ = r.Context().Done() }, 7},
	} {
		rt := NewTransport(contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			tc.next(r)
			return resp, nil
		}))
		if n := testing.AllocsPerRun(100, func() { rt.RoundTrip(req) }); n != tc.want {
			t.Errorf("%s: %v allocations; want %v", tc.name, n, tc.want)
		}
	}
}
