package circuit

import (
	"sync"
	"sync/atomic"
	"time"
)

// window is the rolling count of one closed period of a breaker (from when
// it was made or last closed until it opens): the attempts sent and their
// outcomes, in buckets of a tenth of the window, as gobreaker's rolling
// counts keep them. Every attempt to an upstream passes the breaker, so the
// count is kept here in atomics instead of behind gobreaker's mutex, which
// every call would otherwise take twice (Allow and its done). gobreaker
// keeps the state machine; its ReadyToTrip reads this window.
//
// As in gobreaker, an attempt counts in the bucket it was sent in, and its
// outcome is dropped if that bucket has left the window by the time it
// reports.
type window struct {
	start  time.Time // the closed period's start; ages count from it
	period int64     // bucket width, nanoseconds
	n      int64     // buckets in the window

	mu      sync.Mutex // serializes bucket resets (once per bucket period)
	buckets []bucket
}

// bucket counts the attempts sent in one bucket period. age is written only
// under window.mu, after the counters were zeroed, so an attempt that finds
// its age there counts into a bucket already reset for it.
type bucket struct {
	age                                       atomic.Int64 // age+1 it counts for; 0: never used
	requests, successes, failures, exclusions atomic.Int64
}

// counts is a window's sums, as gobreaker's Counts has them.
type counts struct{ requests, successes, failures, exclusions int64 }

// newWindow returns an empty window from start, with gobreaker's bucket
// geometry for the interval d: d rounded up to whole buckets of
// max(d/windowBuckets, 1).
func newWindow(start time.Time, d time.Duration) *window {
	period := max(int64(d)/windowBuckets, 1)
	n := (int64(d) + period - 1) / period
	return &window{start: start, period: period, n: n, buckets: make([]bucket, n)}
}

// age returns the bucket period now falls in.
func (w *window) age(now time.Time) int64 { return max(int64(now.Sub(w.start))/w.period, 0) }

// request counts an attempt sent now and returns its age, for record.
// time.Since reads only the monotonic clock, half the cost of time.Now.
func (w *window) request() int64 { return w.requestAt(time.Since(w.start)) }

// requestAt counts an attempt sent elapsed after the window's start.
func (w *window) requestAt(elapsed time.Duration) int64 {
	a := max(int64(elapsed)/w.period, 0)
	bk := &w.buckets[a%w.n]
	if bk.age.Load() < a+1 {
		w.reset(bk, a)
	}
	bk.requests.Add(1)
	return a
}

// reset empties bk for age a unless another attempt already did, or it
// already counts a later age (an attempt whose clock reading is a window
// old: it counts there).
func (w *window) reset(bk *bucket, a int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if bk.age.Load() >= a+1 {
		return
	}
	bk.requests.Store(0)
	bk.successes.Store(0)
	bk.failures.Store(0)
	bk.exclusions.Store(0)
	bk.age.Store(a + 1)
}

// record counts the outcome of an attempt of age a. An outcome whose bucket
// has left the window is dropped, as gobreaker drops it: by then its bucket
// either counts a later age (reset for it: the age does not match) or has
// not been reused yet, and sums skips a bucket outside the window, and a
// reuse zeroes it. So no clock is read here.
func (w *window) record(a int64, o outcome) {
	bk := &w.buckets[a%w.n]
	if bk.age.Load() != a+1 {
		return
	}
	switch o {
	case success:
		bk.successes.Add(1)
	case failure:
		bk.failures.Add(1)
	default:
		bk.exclusions.Add(1)
	}
}

// sums returns the counts of the buckets inside the window at now.
func (w *window) sums(now time.Time) counts {
	cur := w.age(now)
	var c counts
	for i := range w.buckets {
		bk := &w.buckets[i]
		if a := bk.age.Load() - 1; a >= 0 && a > cur-w.n && a <= cur {
			c.requests += bk.requests.Load()
			c.successes += bk.successes.Load()
			c.failures += bk.failures.Load()
			c.exclusions += bk.exclusions.Load()
		}
	}
	return c
}
