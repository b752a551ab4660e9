package retry

import (
	"sync"
	"time"
)

// budgetBuckets is how many slices the sliding window is kept in: the window
// moves in steps of window/budgetBuckets, so a burst ages out gradually rather
// than all at once (Finagle's RetryBudget slides the same way).
const budgetBuckets = 10

// retryBudget counts, for one upstream, the requests started and the retries
// spent over a sliding window. It is safe for concurrent use.
//
// Retries are allowed while retries < ratio·requests + floor. Only first
// attempts count as requests, so in a full outage the upstream receives at most
// (1 + ratio)·requests + floor attempts per window, whatever the attempt limit:
// 1.2× by default instead of 4×.
type retryBudget struct {
	width int64   // bucket width in nanoseconds
	ratio float64 // retries allowed per request
	floor float64 // retries always allowed per window

	mu      sync.Mutex
	buckets [budgetBuckets]bucket
}

type bucket struct {
	slot     int64 // absolute bucket index (unix nanos / width) it counts for
	requests int64
	retries  int64
}

func newRetryBudget(c *config) *retryBudget {
	w := int64(c.window) / budgetBuckets
	if w < 1 {
		w = 1
	}
	return &retryBudget{width: w, ratio: c.ratio, floor: c.minPerSecond * c.window.Seconds()}
}

// current returns the bucket for now, resetting it if it held an older slot.
// The caller holds b.mu.
func (b *retryBudget) current(now time.Time) (*bucket, int64) {
	slot := now.UnixNano() / b.width
	bk := &b.buckets[slot%budgetBuckets]
	if bk.slot != slot {
		*bk = bucket{slot: slot}
	}
	return bk, slot
}

// request records the start of a call (its first attempt).
func (b *retryBudget) request(now time.Time) {
	b.mu.Lock()
	bk, _ := b.current(now)
	bk.requests++
	b.mu.Unlock()
}

// withdraw takes one retry from the budget, reporting whether there was one.
func (b *retryBudget) withdraw(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur, slot := b.current(now)
	var reqs, retries int64
	for i := range b.buckets {
		bk := &b.buckets[i]
		if bk.slot > slot-budgetBuckets && bk.slot <= slot {
			reqs += bk.requests
			retries += bk.retries
		}
	}
	if float64(retries+1) > b.ratio*float64(reqs)+b.floor {
		return false
	}
	cur.retries++
	return true
}
