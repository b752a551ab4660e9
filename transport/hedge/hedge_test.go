package hedge_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/transport/hedge"
)

const delay = 10 * time.Millisecond

// byIndex answers the i-th request with as[i], and any later one with the
// last entry.
func byIndex(as ...answer) func(int, *http.Request) answer {
	return func(i int, _ *http.Request) answer { return as[min(i, len(as)-1)] }
}

// TestFastResponseIsNotHedged: an answer before the delay is the outcome;
// no hedge is sent, then or later, and the winner's context lives until the
// caller is done with the body.
func TestFastResponseIsNotHedged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(byIndex(answer{d: 2 * time.Millisecond, status: 200}))
		rt := hedge.NewTransport(f, hedge.WithDelay(delay))
		start := time.Now()
		resp, err := rt.RoundTrip(get(t, context.Background()))
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 2*time.Millisecond {
			t.Errorf("RoundTrip took %v; want 2ms", d)
		}
		time.Sleep(time.Second) // the hedge's timer must be stopped
		calls := f.seen()
		if len(calls) != 1 {
			t.Fatalf("next called %d times; want 1", len(calls))
		}
		if err := calls[0].ctx.Err(); err != nil {
			t.Fatalf("the winner's context ended (%v) before the caller read the body", err)
		}
		if got := readAll(t, resp); got != "answer 0" {
			t.Errorf("body %q; want %q", got, "answer 0")
		}
		if !errors.Is(calls[0].ctx.Err(), context.Canceled) {
			t.Error("the winner's context is still alive after Close; want it released")
		}
		f.checkBodies(t, resp)
	})
}

// TestSlowAttemptIsHedged: after the delay a hedge goes out; the first
// answer wins, every other attempt is canceled with context.Canceled, and
// no more than WithMaxHedges hedges are sent, one delay apart.
func TestSlowAttemptIsHedged(t *testing.T) {
	for _, tc := range []struct {
		name      string
		maxHedges int
		script    []answer
		want      string // body of the winner
		wantAt    time.Duration
	}{
		{"one hedge wins", 1, []answer{{d: time.Hour, status: 200}, {d: time.Millisecond, status: 200}}, "answer 1", delay + time.Millisecond},
		{"original still wins", 1, []answer{{d: delay + 2*time.Millisecond, status: 200}, {d: time.Hour, status: 200}}, "answer 0", delay + 2*time.Millisecond},
		{"third hedge wins", 3, []answer{{d: time.Hour}, {d: time.Hour}, {d: time.Hour}, {d: 5 * time.Millisecond, status: 200}}, "answer 3", 3*delay + 5*time.Millisecond},
		{"at most n hedges", 2, []answer{{d: 100 * time.Millisecond, status: 200}, {d: time.Hour}}, "answer 0", 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake(byIndex(tc.script...))
				for i := range tc.script {
					if tc.script[i].status == 0 {
						tc.script[i].status = 200
					}
				}
				rec := &events{}
				rt := hedge.NewTransport(f, hedge.WithDelay(delay), hedge.WithMaxHedges(tc.maxHedges))
				start := time.Now()
				resp, err := rt.RoundTrip(get(t, callctx.WithRecorder(context.Background(), rec)))
				if err != nil {
					t.Fatal(err)
				}
				if d := time.Since(start); d != tc.wantAt {
					t.Errorf("RoundTrip took %v; want %v", d, tc.wantAt)
				}
				synctest.Wait()
				calls := f.seen()
				if len(calls) > tc.maxHedges+1 {
					t.Errorf("next called %d times; want at most %d", len(calls), tc.maxHedges+1)
				}
				won := resp.Request.Context()
				for i, c := range calls {
					wantType := callctx.AttemptHedge
					if i == 0 {
						wantType = callctx.AttemptOriginal
					}
					if c.typ != wantType {
						t.Errorf("attempt %d has type %v; want %v", i, c.typ, wantType)
					}
					if want := time.Duration(i) * delay; c.at.Sub(start) != want {
						t.Errorf("attempt %d sent after %v; want %v", i, c.at.Sub(start), want)
					}
					if c.ctx == won {
						continue
					}
					<-c.ended // a canceled loser returns at once
					if cause := context.Cause(c.ctx); !errors.Is(cause, context.Canceled) {
						t.Errorf("loser %d: context ended with %v; want context.Canceled (not an overload signal)", i, cause)
					}
				}
				if won.Err() != nil {
					t.Error("the winner's context ended before the body was read")
				}
				if got := readAll(t, resp); got != tc.want {
					t.Errorf("body %q; want %q", got, tc.want)
				}
				time.Sleep(time.Hour)
				if n := len(f.seen()); n != len(calls) {
					t.Errorf("%d more attempts after the call was decided", n-len(calls))
				}
				f.checkBodies(t, resp)
				if hedges := rec.of(callctx.KindHedge); len(hedges) != len(calls)-1 {
					t.Errorf("%d hedge events for %d hedges", len(hedges), len(calls)-1)
				} else {
					for i, ev := range hedges {
						if ev.Attempt != i+1 || ev.Delay != time.Duration(i+1)*delay || ev.Key != "http://api.test:80" {
							t.Errorf("hedge event %d: %+v; want attempt %d, delay %v, the upstream key", i, ev, i+1, time.Duration(i+1)*delay)
						}
					}
				}
				if won := rec.of(callctx.KindHedgeWon); len(won) != 1 {
					t.Errorf("hedge_won events: %v; want one", won)
				} else if wantN := int(tc.want[len(tc.want)-1] - '0'); won[0].Attempt != wantN || (wantN == 0) != (won[0].Reason == "original") {
					t.Errorf("hedge_won event %+v; want attempt %d", won[0], wantN)
				}
			})
		})
	}
}

// TestRetryableFailures: a 429/502/503/504 or an error never wins while
// another attempt is in flight; before the delay it is returned at once,
// for the retry layer above, and when every attempt failed the last
// response (else the last error) is returned.
func TestRetryableFailures(t *testing.T) {
	boom := errors.New("connection reset")
	for _, tc := range []struct {
		name       string
		script     []answer
		wantStatus int   // 0: an error
		wantErr    error // when wantStatus is 0
		wantAt     time.Duration
		wantCalls  int
	}{
		{"503 before the delay is returned at once", []answer{{d: 2 * time.Millisecond, status: 503}}, 503, nil, 2 * time.Millisecond, 1},
		{"error before the delay is returned at once", []answer{{d: 2 * time.Millisecond, err: boom}}, 0, boom, 2 * time.Millisecond, 1},
		{"503 after the delay loses to the hedge", []answer{{d: 15 * time.Millisecond, status: 503}, {d: 20 * time.Millisecond, status: 200}}, 200, nil, delay + 20*time.Millisecond, 2},
		{"a hedge's 429 loses to the original", []answer{{d: 30 * time.Millisecond, status: 200}, {d: time.Millisecond, status: 429}}, 200, nil, 30 * time.Millisecond, 2},
		{"404 wins", []answer{{d: time.Hour, status: 200}, {d: time.Millisecond, status: 404}}, 404, nil, delay + time.Millisecond, 2},
		{"all fail: the last response", []answer{{d: 15 * time.Millisecond, status: 503}, {d: 12 * time.Millisecond, status: 502}}, 502, nil, delay + 12*time.Millisecond, 2},
		{"all fail: a response beats an error", []answer{{d: 15 * time.Millisecond, status: 504}, {d: 12 * time.Millisecond, err: boom}}, 504, nil, delay + 12*time.Millisecond, 2},
		{"all fail: the last error", []answer{{d: 15 * time.Millisecond, err: io.ErrUnexpectedEOF}, {d: 12 * time.Millisecond, err: boom}}, 0, boom, delay + 12*time.Millisecond, 2},
		{"a local refusal does not hide the upstream's error", []answer{{d: 15 * time.Millisecond, err: boom}, {err: refused{}}}, 0, boom, 15 * time.Millisecond, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake(byIndex(tc.script...))
				rt := hedge.NewTransport(f, hedge.WithDelay(delay))
				start := time.Now()
				resp, err := rt.RoundTrip(get(t, context.Background()))
				if d := time.Since(start); d != tc.wantAt {
					t.Errorf("RoundTrip took %v; want %v", d, tc.wantAt)
				}
				switch {
				case resp != nil && err != nil:
					t.Fatalf("got a response and an error (%v)", err)
				case tc.wantStatus == 0:
					if !errors.Is(err, tc.wantErr) {
						t.Fatalf("got (%v, %v); want error %v", resp, err, tc.wantErr)
					}
				case err != nil:
					t.Fatalf("got error %v; want %d", err, tc.wantStatus)
				case resp.StatusCode != tc.wantStatus:
					t.Errorf("status %d; want %d", resp.StatusCode, tc.wantStatus)
				}
				if resp != nil {
					readAll(t, resp)
				}
				time.Sleep(time.Hour)
				if n := len(f.seen()); n != tc.wantCalls {
					t.Errorf("next called %d times; want %d", n, tc.wantCalls)
				}
				f.checkBodies(t, resp)
			})
		})
	}
}

// refused is a local refusal of a layer below (an open breaker, a full
// queue): the request was not sent.
type refused struct{}

func (refused) Error() string      { return "refused below" }
func (refused) LocalRefusal() bool { return true }

// TestCallerGivesUp: a canceled caller gets context.Canceled at once, also
// while the call waits for a hedge; what is in flight is canceled and what
// it returns is discarded.
func TestCallerGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(byIndex(answer{d: 15 * time.Millisecond, status: 503}, answer{d: time.Hour, status: 200}))
		rt := hedge.NewTransport(f, hedge.WithDelay(delay))
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(20*time.Millisecond, cancel)
		start := time.Now()
		resp, err := rt.RoundTrip(get(t, ctx))
		if resp != nil || !errors.Is(err, context.Canceled) {
			t.Fatalf("got (%v, %v); want context.Canceled", resp, err)
		}
		if d := time.Since(start); d != 20*time.Millisecond {
			t.Errorf("RoundTrip returned %v after the start; want at the cancel (20ms)", d)
		}
		synctest.Wait()
		for _, c := range f.seen() {
			<-c.ended
		}
		f.checkBodies(t, nil)
	})
}

// TestWhatIsHedged: only requests safe to send twice, with a body that can
// be sent again, every copy with a body of its own.
func TestWhatIsHedged(t *testing.T) {
	const payload = "a payload that every copy must carry whole"
	for _, tc := range []struct {
		name    string
		method  string
		key     bool // Idempotency-Key
		getBody bool
		upgrade bool
		hedged  bool
	}{
		{"GET", http.MethodGet, false, true, false, true},
		{"PUT with GetBody", http.MethodPut, false, true, false, true},
		{"DELETE", http.MethodDelete, false, true, false, true},
		{"POST without a key", http.MethodPost, false, true, false, false},
		{"PATCH without a key", http.MethodPatch, false, true, false, false},
		{"POST with a key", http.MethodPost, true, true, false, true},
		{"PUT without GetBody", http.MethodPut, false, false, false, false},
		{"GET asking for an upgrade", http.MethodGet, false, true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake(byIndex(answer{d: 100 * time.Millisecond, status: 200}, answer{d: 5 * time.Millisecond, status: 200}))
				rt := hedge.NewTransport(f, hedge.WithDelay(delay))
				bodies := &bodyFactory{payload: payload}
				req, _ := http.NewRequest(tc.method, testURL, nil)
				if tc.method != http.MethodGet && tc.method != http.MethodDelete {
					req.Body, req.ContentLength = bodies.new(), int64(len(payload))
					if tc.getBody {
						req.GetBody = func() (io.ReadCloser, error) { return bodies.new(), nil }
					}
				}
				if tc.key {
					req.Header.Set("Idempotency-Key", `"k-1"`)
				}
				if tc.upgrade {
					req.Header.Set("Connection", "Upgrade")
					req.Header.Set("Upgrade", "websocket")
				}
				before := req.Header.Clone()
				resp, err := rt.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				readAll(t, resp)
				calls := f.seen()
				if hedged := len(calls) == 2; hedged != tc.hedged {
					t.Fatalf("%d attempts; want hedged %v", len(calls), tc.hedged)
				}
				if req.Body != nil {
					for i, c := range calls {
						if !c.bodyOK || c.body != payload {
							t.Errorf("attempt %d carried %q; want the whole payload", i, c.body)
						}
					}
					if got := int(bodies.made.Load()); got != len(calls) {
						t.Errorf("%d bodies made for %d attempts; want one each", got, len(calls))
					}
				}
				if bodies.overlap.Load() {
					t.Error("two attempts read one body at once")
				}
				if req.Header.Get("Idempotency-Key") != before.Get("Idempotency-Key") || len(req.Header) != len(before) {
					t.Errorf("caller's header changed: %v; want %v", req.Header, before)
				}
			})
		})
	}
}

// TestGetBodyFails: when GetBody fails there is no copy to send; the first
// attempt goes on alone.
func TestGetBodyFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(byIndex(answer{d: 50 * time.Millisecond, status: 200}))
		rt := hedge.NewTransport(f, hedge.WithDelay(delay))
		req, _ := http.NewRequest(http.MethodPut, testURL, strings.NewReader("x"))
		req.GetBody = func() (io.ReadCloser, error) { return nil, errors.New("gone") }
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		if n := len(f.seen()); n != 1 {
			t.Errorf("next called %d times; want 1", n)
		}
	})
}

// TestNoHedgePastDeadline: a hedge that could only be sent after the
// caller's deadline is not armed.
func TestNoHedgePastDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(byIndex(answer{d: 8 * time.Millisecond, status: 200}))
		rt := hedge.NewTransport(f, hedge.WithDelay(delay))
		ctx, cancel := context.WithTimeout(context.Background(), 9*time.Millisecond)
		defer cancel()
		resp, err := rt.RoundTrip(get(t, ctx))
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		if f.seen()[0].ctx != ctx {
			t.Error("the attempt got a context of its own; want the caller's, nothing being armed")
		}
	})
}

func TestInvalidOptionsPanic(t *testing.T) {
	for name, f := range map[string]func(){
		"WithQuantile(0)":   func() { hedge.WithQuantile(0) },
		"WithQuantile(1)":   func() { hedge.WithQuantile(1) },
		"WithQuantile(NaN)": func() { hedge.WithQuantile(zero / zero) },
		"WithDelay(-1)":     func() { hedge.WithDelay(-1) },
		"WithMaxHedges(-1)": func() { hedge.WithMaxHedges(-1) },
		"WithMaxKeys(0)":    func() { hedge.WithMaxKeys(0) },
		"WithBudget(-1)":    func() { hedge.WithBudget(-1, time.Second, 0) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				r := recover()
				if s, _ := r.(string); !strings.HasPrefix(s, "hedge: With") {
					t.Errorf("panic %v; want one saying hedge: With...", r)
				}
			}()
			f()
		})
	}
}

var zero float64

func TestMaxHedgesZeroPassesThrough(t *testing.T) {
	f := newFake(byIndex(answer{status: 200}))
	rt := hedge.NewTransport(f, hedge.WithDelay(0), hedge.WithMaxHedges(0))
	req := get(t, context.Background())
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if rt.SpendsRetryBudget() {
		t.Error("a Transport that never hedges asks for the retry budget")
	}
	if f.seen()[0].ctx != req.Context() {
		t.Error("next got a context of its own; want the caller's")
	}
}
