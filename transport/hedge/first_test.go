package hedge_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptrace"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/transport/hedge"
)

type ctxKey struct{}

// TestFirstAttemptContext: the first attempt's context, which the layer makes
// cancelable only when something asks (first.go), is the caller's in every
// way a layer below can see: its values and deadline, Done when the caller
// gives up, a child context that follows it; and, when the hedge wins, it is
// canceled with context.Canceled as its cause, and a child made from it is
// canceled too.
func TestFirstAttemptContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		parent, cancel := context.WithTimeout(context.WithValue(context.Background(), ctxKey{}, "v"), time.Minute)
		defer cancel()
		wantDL, _ := parent.Deadline()
		type seenCtx struct {
			ctx, child context.Context
		}
		seen := make(chan seenCtx, 2)
		f := newFake(func(i int, r *http.Request) answer {
			ctx := r.Context()
			if ctx.Value(ctxKey{}) != "v" {
				t.Errorf("attempt %d: value %v; want the caller's", i, ctx.Value(ctxKey{}))
			}
			if dl, ok := ctx.Deadline(); !ok || !dl.Equal(wantDL) {
				t.Errorf("attempt %d: deadline %v %v; want the caller's %v", i, dl, ok, wantDL)
			}
			if ctx.Err() != nil {
				t.Errorf("attempt %d: context ended before it was sent: %v", i, ctx.Err())
			}
			child, stop := context.WithCancel(ctx)
			t.Cleanup(stop)
			seen <- seenCtx{ctx, child}
			if i == 0 {
				return answer{d: time.Hour, status: 200} // the hedge wins
			}
			return answer{d: time.Millisecond, status: 200}
		})
		rt := hedge.NewTransport(f, hedge.WithDelay(delay))
		resp, err := rt.RoundTrip(get(t, parent))
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		synctest.Wait()
		first := <-seen
		for _, c := range []context.Context{first.ctx, first.child} {
			if !errors.Is(c.Err(), context.Canceled) || !errors.Is(context.Cause(c), context.Canceled) {
				t.Errorf("losing first attempt: Err %v, Cause %v; want context.Canceled", c.Err(), context.Cause(c))
			}
			select {
			case <-c.Done():
			default:
				t.Error("losing first attempt: Done not closed")
			}
		}
		if parent.Err() != nil {
			t.Errorf("the caller's context ended: %v", parent.Err())
		}
	})
}

// TestFirstAttemptContextFollowsCaller: when the caller gives up, the first
// attempt's context is done with the caller's error and cause, whether or
// not a layer below had asked for Done before.
func TestFirstAttemptContextFollowsCaller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cause := errors.New("caller left")
		for _, early := range []bool{true, false} {
			parent, cancel := context.WithCancelCause(context.Background())
			got := make(chan error, 1)
			f := newFake(func(int, *http.Request) answer { return answer{status: 200} })
			rt := hedge.NewTransport(nextFunc(func(r *http.Request) (*http.Response, error) {
				ctx := r.Context()
				if early {
					<-ctx.Done()
				} else {
					cancel(cause)
				}
				got <- context.Cause(ctx)
				if !early {
					<-ctx.Done()
				}
				return f.RoundTrip(r)
			}), hedge.WithDelay(time.Hour))
			if early {
				time.AfterFunc(delay, func() { cancel(cause) })
			}
			resp, err := rt.RoundTrip(get(t, parent))
			if err == nil {
				readAll(t, resp)
			}
			if c := <-got; !errors.Is(c, cause) {
				t.Errorf("Done asked early %v: cause %v; want the caller's", early, c)
			}
			cancel(nil)
		}
	})
}

// TestWinnerContextReleasedOnClose: the first attempt's context, when its
// response wins, lives while the caller reads the body and ends when the
// body is closed (DESIGN.md: never while the caller reads).
func TestWinnerContextReleasedOnClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(func(int, *http.Request) answer { return answer{status: 200} })
		rt := hedge.NewTransport(f, hedge.WithDelay(time.Hour))
		resp, err := rt.RoundTrip(get(t, context.Background()))
		if err != nil {
			t.Fatal(err)
		}
		ctx := f.seen()[0].ctx
		if ctx.Err() != nil {
			t.Fatalf("context ended before the body was read: %v", ctx.Err())
		}
		readAll(t, resp)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
			t.Fatal("context of the winning first attempt lives after the body was read and closed")
		}
	})
}

// TestPooledTimerAndBubbles: the Transport keeps the timers of calls that
// sent no hedge for the next call, but never lets a timer made inside a
// testing/synctest bubble out of it, nor one made outside into it (either is
// a fatal error of the runtime, not a test failure). One Transport serves
// calls outside, inside two bubbles, and outside again; inside, its hedges
// still go at the bubble's time.
func TestPooledTimerAndBubbles(t *testing.T) {
	slowFirst := func(i int, _ *http.Request) answer {
		if i%2 == 0 {
			return answer{d: time.Hour, status: 200}
		}
		return answer{status: 200}
	}
	var script = func(i int, r *http.Request) answer { return answer{status: 200} }
	f := newFake(func(i int, r *http.Request) answer { return script(i, r) })
	rt := hedge.NewTransport(f, hedge.WithDelay(delay))
	outside := func() {
		script = func(int, *http.Request) answer { return answer{status: 200} }
		for range 50 {
			resp, err := rt.RoundTrip(get(t, context.Background()))
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
		}
	}
	outside()
	for range 2 {
		synctest.Test(t, func(t *testing.T) {
			f.setScript(func(i int, r *http.Request) answer { return answer{status: 200} })
			for range 20 {
				resp, err := rt.RoundTrip(get(t, context.Background()))
				if err != nil {
					t.Fatal(err)
				}
				readAll(t, resp)
			}
			n := len(f.seen())
			f.setScript(func(i int, r *http.Request) answer { return slowFirst(i-n, r) })
			start := time.Now()
			resp, err := rt.RoundTrip(get(t, context.Background()))
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
			if d := time.Since(start); d != delay {
				t.Errorf("hedged call inside a bubble took %v; want the hedge's answer at %v", d, delay)
			}
			synctest.Wait()
		})
		f.setScript(func(i int, r *http.Request) answer { return script(i, r) })
		outside()
	}
}

// nextFunc adapts a function to http.RoundTripper.
type nextFunc func(*http.Request) (*http.Response, error)

func (f nextFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// wireNext is a next RoundTripper that, as net/http's Transport does, calls
// the context's httptrace GetConn when the request leaves the client: after
// wait(i), a wait of the client's own (a rate limit, a queue), then answers
// through f.
func wireNext(f *fake, wait func(i int) time.Duration) nextFunc {
	var mu sync.Mutex
	n := 0
	return func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		i := n
		n++
		mu.Unlock()
		if d := wait(i); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return nil, context.Cause(r.Context())
			}
		}
		if tr := httptrace.ContextClientTrace(r.Context()); tr != nil && tr.GetConn != nil {
			tr.GetConn("api.test:80")
		}
		return f.RoundTrip(r)
	}
}

// TestDelayCountsFromTheWire: once the attempts to an upstream report
// httptrace's GetConn, the delay counts from there: a first attempt that
// waits in the client (below the hedge layer) longer than the delay gets no
// hedge, and one that is slow on the wire gets one a delay after it left;
// the latency recorded is the wire's. The caller's own ClientTrace still
// gets its GetConn.
func TestDelayCountsFromTheWire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var local time.Duration
		f := newFake(func(i int, r *http.Request) answer { return answer{status: 200} })
		rt := hedge.NewTransport(wireNext(f, func(int) time.Duration { return local }), hedge.WithDelay(delay))
		call := func(ctx context.Context) time.Duration {
			start := time.Now()
			resp, err := rt.RoundTrip(get(t, ctx))
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
			return time.Since(start)
		}
		call(context.Background()) // learns that the upstream reports GetConn

		// Waits 5 delays in the client, then answers at once: no hedge.
		local = 5 * delay
		n := len(f.seen())
		if d := call(context.Background()); d != 5*delay {
			t.Errorf("call took %v; want the local wait, %v", d, 5*delay)
		}
		if got := len(f.seen()) - n; got != 1 {
			t.Errorf("%d requests for a call that waited in the client; want 1, no hedge", got)
		}

		// Leaves at once, slow on the wire: hedged a delay after it left,
		// and the caller's own trace sees its GetConn.
		local = 0
		f.setScript(func(i int, r *http.Request) answer {
			if i == n+1 {
				return answer{d: time.Hour, status: 200}
			}
			return answer{status: 200}
		})
		var mu sync.Mutex
		got := 0 // the hedge's context is the caller's too: its GetConn counts
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{GetConn: func(string) {
			mu.Lock()
			got++
			mu.Unlock()
		}})
		if d := call(ctx); d != delay {
			t.Errorf("call slow on the wire took %v; want the hedge's answer at %v", d, delay)
		}
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if got != 2 {
			t.Errorf("the caller's ClientTrace got %d GetConn; want 2, the first attempt's and the hedge's", got)
		}
	})
}

// TestDelayCountsFromTheWireQuantile: with the quantile, waits in the
// client are not latencies of the upstream: attempts that wait 50 ms in
// the client and take 5 ms on the wire give a delay of about 5 ms.
func TestDelayCountsFromTheWireQuantile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(func(int, *http.Request) answer { return answer{d: 5 * time.Millisecond, status: 200} })
		rt := hedge.NewTransport(wireNext(f, func(int) time.Duration { return 50 * time.Millisecond }))
		for range 100 {
			resp, err := rt.RoundTrip(get(t, context.Background()))
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
		}
		d, ok := rt.Delay("http://api.test:80")
		if !ok || d < 5*time.Millisecond || d > 6*time.Millisecond {
			t.Errorf("Delay = %v, %v; want about 5ms, the wire's latency", d, ok)
		}
		if n := len(f.seen()); n != 100 {
			t.Errorf("%d requests for 100 calls; want no hedge", n)
		}
	})
}

// TestNoHedgeOnceTheAnswerArrived: a first attempt whose answer has arrived
// (httptrace's GotFirstResponseByte) gets no hedge, however long the layers
// below take to hand it up: a hedge then could not win, and could reach an
// upstream that has just asked for a pause. The control, whose answer has
// not arrived when the delay is over, is hedged.
func TestNoHedgeOnceTheAnswerArrived(t *testing.T) {
	for _, arrived := range []bool{true, false} {
		synctest.Test(t, func(t *testing.T) {
			f := newFake(func(int, *http.Request) answer { return answer{status: 200} })
			next := nextFunc(func(r *http.Request) (*http.Response, error) {
				if callctx.AttemptTypeOf(r.Context()) != callctx.AttemptHedge {
					if tr := httptrace.ContextClientTrace(r.Context()); tr != nil && arrived && tr.GotFirstResponseByte != nil {
						tr.GotFirstResponseByte()
					}
					time.Sleep(5 * delay) // the answer, slow to come up
				}
				return f.RoundTrip(r)
			})
			rt := hedge.NewTransport(next, hedge.WithDelay(delay))
			resp, err := rt.RoundTrip(get(t, context.Background()))
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
			synctest.Wait()
			want := 1
			if !arrived {
				want = 2
			}
			if n := len(f.seen()); n != want {
				t.Errorf("answer arrived %v: %d requests; want %d", arrived, n, want)
			}
		})
	}
}

// TestFirstAttemptContextOfACall: below a budget layer the caller's context
// is the call's own (callctx.Call), and the first attempt's cancelable
// context is made beside it rather than under it (Call.Sibling), so that a
// layer below registers with one cancelable context instead of a chain of
// two. A layer below still sees the call in every way: its values (the
// request ID, the call's deadline mark) and deadline, Done with the call's
// cause when the deadline passes, the caller's when the caller gives up;
// canceled when a hedge wins; and a child context it makes is canceled
// with it at once (registered with it, not followed by a goroutine).
func TestFirstAttemptContextOfACall(t *testing.T) {
	budgetSpent := errors.New("budget spent")
	callerLeft := errors.New("caller left")
	// A delay that leaves time for a hedge before the call's deadline: the
	// layer takes the first attempt's context of its own only then.
	const armed = 30 * time.Second
	// newCall returns a request carrying a call with a deadline a minute
	// away, on a parent with a value, and the parent's cancel.
	newCall := func(t *testing.T) (*http.Request, *callctx.Call, context.CancelCauseFunc) {
		parent, cancel := context.WithCancelCause(context.WithValue(context.Background(), ctxKey{}, "v"))
		call := callctx.NewCall(parent)
		call.SetID("call-1")
		now := time.Now()
		call.SetDeadline(now, now.Add(time.Minute), budgetSpent)
		return get(t, call), call, cancel
	}
	// sees checks what a layer below sees of the call, and returns a child
	// context made from the attempt's, as net/http's Transport makes one.
	sees := func(t *testing.T, call *callctx.Call, ctx context.Context) context.Context {
		t.Helper()
		if ctx.Value(ctxKey{}) != "v" {
			t.Errorf("value %v; want the caller's", ctx.Value(ctxKey{}))
		}
		if id, _ := callctx.RequestID(ctx); id != "call-1" {
			t.Errorf("request ID %q; want the call's", id)
		}
		want, _ := call.Deadline()
		if dl, ok := callctx.CallDeadline(ctx); !ok || !dl.Equal(want) {
			t.Errorf("call's deadline mark %v %v; want %v", dl, ok, want)
		}
		if dl, ok := ctx.Deadline(); !ok || !dl.Equal(want) {
			t.Errorf("deadline %v %v; want the call's %v", dl, ok, want)
		}
		child, stop := context.WithCancelCause(ctx)
		t.Cleanup(func() { stop(nil) })
		return child
	}
	ended := func(t *testing.T, what string, wantErr, wantCause error, cs ...context.Context) {
		t.Helper()
		for _, c := range cs {
			if !errors.Is(c.Err(), wantErr) || !errors.Is(context.Cause(c), wantCause) {
				t.Errorf("%s: Err %v, Cause %v; want %v, %v", what, c.Err(), context.Cause(c), wantErr, wantCause)
			}
		}
	}

	t.Run("a hedge wins", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			req, call, cancel := newCall(t)
			defer cancel(nil)
			var first, child context.Context
			f := newFake(func(i int, r *http.Request) answer {
				if i == 0 {
					first, child = r.Context(), sees(t, call, r.Context())
					return answer{d: time.Hour, status: 200}
				}
				return answer{d: time.Millisecond, status: 200}
			})
			resp, err := hedge.NewTransport(f, hedge.WithDelay(delay)).RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
			synctest.Wait()
			ended(t, "losing first attempt", context.Canceled, context.Canceled, first, child)
			if call.Err() != nil {
				t.Errorf("the call's context ended with its first attempt: %v", call.Err())
			}
		})
	})
	t.Run("the call's deadline passes", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			req, call, cancel := newCall(t)
			defer cancel(nil)
			var first, child context.Context
			f := newFake(func(i int, r *http.Request) answer {
				if i == 0 {
					first, child = r.Context(), sees(t, call, r.Context())
				}
				return answer{d: 2 * time.Minute, status: 200}
			})
			if _, err := hedge.NewTransport(f, hedge.WithDelay(armed)).RoundTrip(req); !errors.Is(err, budgetSpent) {
				t.Fatalf("error %v; want the call's cause", err)
			}
			ended(t, "first attempt past the call's deadline", context.DeadlineExceeded, budgetSpent, first, child)
		})
	})
	t.Run("the caller gives up", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			req, call, cancel := newCall(t)
			var first, child context.Context
			f := newFake(func(_ int, r *http.Request) answer {
				first, child = r.Context(), sees(t, call, r.Context())
				time.AfterFunc(time.Second, func() { cancel(callerLeft) })
				return answer{d: time.Hour, status: 200}
			})
			if _, err := hedge.NewTransport(f, hedge.WithDelay(armed)).RoundTrip(req); !errors.Is(err, callerLeft) {
				t.Fatalf("error %v; want the caller's cause", err)
			}
			ended(t, "first attempt of a caller that left", context.Canceled, callerLeft, first, child)
		})
	})
	t.Run("the winner's body is closed", func(t *testing.T) {
		req, call, cancel := newCall(t)
		defer cancel(nil)
		var first, child context.Context
		f := newFake(func(_ int, r *http.Request) answer {
			first, child = r.Context(), sees(t, call, r.Context())
			return answer{status: 200}
		})
		resp, err := hedge.NewTransport(f, hedge.WithDelay(armed)).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if first.Err() != nil || child.Err() != nil {
			t.Fatalf("ended before the body was read: %v, %v", first.Err(), child.Err())
		}
		readAll(t, resp)
		// No wait: a child registered with the attempt's context is canceled
		// before the cancel returns; one a goroutine follows would be later.
		ended(t, "the winner's context once its body is closed", context.Canceled, context.Canceled, first, child)
		if call.Err() != nil {
			t.Errorf("the call's context ended with its attempt: %v", call.Err())
		}
	})
}
