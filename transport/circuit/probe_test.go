package circuit

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outboundhttp/outbound/internal/contracttest"
)

// openErr sends one request and returns its *OpenError, failing the test if
// the request was not refused.
func openErr(t *testing.T, rt http.RoundTripper) *OpenError {
	t.Helper()
	resp, err := rt.RoundTrip(get(t, hostA))
	if resp != nil {
		resp.Body.Close()
	}
	var oe *OpenError
	if !errors.As(err, &oe) {
		t.Fatalf("got %v, %v; want an *OpenError", resp, err)
	}
	return oe
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestNextProbeReportsEachProbe: a refusal tells how long until the next
// probe and hands out a channel that the probe's report closes, whatever
// the outcome; the next refusal gets a fresh channel for the next probe.
func TestNextProbeReportsEachProbe(t *testing.T) {
	for _, tc := range []struct {
		name      string
		status    int
		cancel    bool
		wantState State
	}{
		{"probe succeeds", 200, false, Closed},
		{"probe fails", 503, false, Open},
		{"probe excluded (caller gave up)", 200, true, HalfOpen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := contracttest.NewGate(503)
				tr := NewTransport(g, WithMinRequests(1))
				do(t, tr, hostA, 1)
				oe := openErr(t, tr)
				in, reported := oe.NextProbe()
				if want := DefaultBreakDuration + time.Nanosecond; in != want || reported == nil || isClosed(reported) {
					t.Fatalf("open: NextProbe() = %v, closed %v; want %v and an open channel", in, reported == nil || isClosed(reported), want)
				}

				time.Sleep(in)
				hold := make(chan struct{})
				g.Set(tc.status, hold)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				probeDone := make(chan struct{})
				go func() {
					defer close(probeDone)
					req := get(t, hostA).WithContext(ctx)
					if resp, err := tr.RoundTrip(req); err == nil {
						resp.Body.Close()
					}
				}()
				synctest.Wait() // the probe is at the base
				half := openErr(t, tr)
				hin, hreported := half.NextProbe()
				if half.State != HalfOpen || hin != 0 || hreported != reported {
					t.Fatalf("half-open: %v, NextProbe() = %v, same channel %v; want half-open, 0, the channel of the open refusal", half.State, hin, hreported == reported)
				}
				if isClosed(reported) {
					t.Fatal("the channel closed before the probe reported")
				}
				if tc.cancel {
					cancel()
				} else {
					close(hold)
				}
				<-probeDone
				if !isClosed(reported) {
					t.Fatal("the probe reported, but its channel is still open")
				}
				if s := tr.State("http://a.example:80"); s != tc.wantState {
					t.Fatalf("after the probe: state %v; want %v", s, tc.wantState)
				}
				if g.Calls() != 2 {
					t.Fatalf("the base saw %d requests; want 2 (the trip and the probe)", g.Calls())
				}
				if tc.wantState == Open {
					_, next := openErr(t, tr).NextProbe()
					if next == reported || next == nil || isClosed(next) {
						t.Fatal("a refusal after a failed probe must carry a fresh, open channel")
					}
				}
			})
		})
	}
}

// TestNextProbeAfterPanic: a probe whose next RoundTripper panics reports a
// failure and wakes the waiters.
func TestNextProbeAfterPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := contracttest.NewGate(503)
		var boom bool
		tr := NewTransport(contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			if boom {
				panic("boom")
			}
			return g.RoundTrip(r)
		}), WithMinRequests(1))
		do(t, tr, hostA, 1)
		_, reported := openErr(t, tr).NextProbe()
		time.Sleep(DefaultBreakDuration + time.Nanosecond)
		boom = true
		func() {
			defer func() { recover() }()
			tr.RoundTrip(get(t, hostA))
		}()
		if !isClosed(reported) {
			t.Fatal("a panicking probe must still close its channel")
		}
		if s := tr.State("http://a.example:80"); s != Open {
			t.Fatalf("after a panicking probe: %v; want open", s)
		}
	})
}

// TestNextProbeAtExpiry: at the very instant the break ends gobreaker still
// reads open; the refusal then says to ask again a moment later, never 0
// (which would mean "wait for a probe in flight" when there is none), and a
// request sent after that wait is the probe.
func TestNextProbeAtExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := NewTransport(newFake(503), WithMinRequests(1))
		do(t, tr, hostA, 1)
		time.Sleep(DefaultBreakDuration)
		oe := openErr(t, tr)
		in, _ := oe.NextProbe()
		if oe.State != Open || in <= 0 {
			t.Fatalf("at the break's end: %v, NextProbe in %v; want open and a positive wait", oe.State, in)
		}
		time.Sleep(in)
		if resp, err := tr.RoundTrip(get(t, hostA)); err != nil {
			t.Fatalf("after NextProbe's wait: %v; want the request sent as the probe", err)
		} else {
			resp.Body.Close()
		}
		if in, ch := (&OpenError{State: Open}).NextProbe(); in <= 0 || ch != nil {
			t.Fatalf("a hand-made OpenError: NextProbe() = %v, %v; want a positive wait and a nil channel", in, ch)
		}
	})
}
