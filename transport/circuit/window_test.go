package circuit

import (
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outboundhttp/outbound/internal/contracttest"
)

// TestClosedAllocatesNothing: the closed state's success path allocates
// nothing of its own (its count is kept in the window's atomics; gobreaker's
// Allow, which made a closure per attempt, is not called), and an open
// breaker's refusal allocates only its *OpenError (issue 18: at most 2).
func TestClosedAllocatesNothing(t *testing.T) {
	resp := &http.Response{StatusCode: 200, Body: http.NoBody}
	tr := NewTransport(contracttest.RoundTripFunc(func(*http.Request) (*http.Response, error) { return resp, nil }))
	req, _ := http.NewRequest(http.MethodGet, "http://a.test/x", nil)
	tr.RoundTrip(req) // make the key's breaker
	if n := testing.AllocsPerRun(100, func() { tr.RoundTrip(req) }); n != 0 {
		t.Errorf("closed, success: %v allocations per attempt; want 0", n)
	}

	open := NewTransport(contracttest.RoundTripFunc(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 503, Body: http.NoBody}, nil
	}), WithMinRequests(1), WithBreakDuration(time.Hour))
	open.RoundTrip(req)
	if got := open.State("http://a.test:80"); got != Open {
		t.Fatalf("state after a 503 with min requests 1: %v; want open", got)
	}
	if n := testing.AllocsPerRun(100, func() { open.RoundTrip(req) }); n != 1 {
		t.Errorf("open, refusal: %v allocations; want 1 (the *OpenError)", n)
	}
}

// TestWindowConcurrent: outcomes reported from many goroutines at once, while
// the window rolls into new buckets, are all counted, and a bucket reused a
// window later starts from zero.
func TestWindowConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWindow(time.Now(), 10*time.Second) // buckets of 1 s
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 100 {
					now := time.Now().Add(time.Duration(g%2) * time.Second) // half of them a bucket later
					a := w.requestAt(now.Sub(w.start))
					o := success
					if i%4 == 0 {
						o = failure
					}
					w.record(a, o)
				}
			})
		}
		wg.Wait()
		got := w.sums(time.Now().Add(time.Second))
		if want := (counts{requests: 800, successes: 600, failures: 200}); got != want {
			t.Errorf("sums: got %+v; want %+v", got, want)
		}
		// 10 s later the first bucket has left the window; 11 s later both.
		if got := w.sums(time.Now().Add(10 * time.Second)); got.requests != 400 {
			t.Errorf("requests 10 s later: got %d; want 400 (the later bucket's)", got.requests)
		}
		later := time.Now().Add(10 * time.Second) // the first bucket's index again
		w.record(w.requestAt(later.Sub(w.start)), success)
		if got := w.sums(later); got.requests != 401 || got.successes != 301 {
			t.Errorf("after reusing a bucket: got %+v; want 401 requests, 301 successes", got)
		}
		// An outcome whose bucket has left the window is dropped, as in
		// gobreaker: reported after its bucket was reused, or before and
		// then zeroed by the reuse.
		a := w.requestAt(later.Sub(w.start))
		w.requestAt(later.Add(10 * time.Second).Sub(w.start)) // reuses a's bucket
		w.record(a, failure)
		if got := w.sums(later.Add(10 * time.Second)); got.failures != 0 || got.requests != 1 {
			t.Errorf("a window later, after a late report: got %+v; want 1 request, 0 failures", got)
		}
		b := w.requestAt(later.Add(20 * time.Second).Sub(w.start))
		w.record(b, failure) // in time, but its bucket then leaves the window unused
		if got := w.sums(later.Add(30 * time.Second)); got.failures != 0 {
			t.Errorf("a window after the bucket's last use: got %d failures; want 0", got.failures)
		}
	})
}
