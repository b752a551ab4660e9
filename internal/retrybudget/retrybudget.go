// Package retrybudget is the retry budget of one upstream: over a sliding
// window, resends (retries and hedges) may add at most a ratio of the
// requests started, plus a small floor. The retry layer keeps one per
// upstream; the hedge layer spends the retry layer's when one is above it
// (through internal/callctx) and keeps its own otherwise, with the same
// defaults.
package retrybudget

import (
	"sync"
	"sync/atomic"
	"time"
)

// Defaults, after Finagle's RetryBudget (ttl 10 s, 20 % of requests) and
// Envoy's retry budgets (budget_percent 20 %, a small floor of
// min_retry_concurrency 3). transport/retry and transport/hedge export them
// under their own names.
const (
	DefaultRatio        = 0.2
	DefaultWindow       = 10 * time.Second
	DefaultMinPerSecond = 3.0
)

// buckets is how many slices the sliding window is kept in: the window moves
// in steps of window/buckets, so a burst ages out gradually rather than all
// at once (Finagle's RetryBudget slides the same way).
const buckets = 10

// Budget counts, for one upstream, the requests started and the resends
// spent over a sliding window. Build it with New; the zero value is not
// usable. It is safe for concurrent use and holds no resources.
//
// Resends are allowed while resends < ratio·requests + floor. Only first
// attempts count as requests, so in a full outage the upstream receives at
// most (1 + ratio)·requests + floor attempts per window, whatever the attempt
// limit: 1.2× by default instead of 4×.
//
// Every call to an upstream records a request, so Request takes no lock: it
// adds to its bucket's atomic counter, and only the first request of a new
// bucket (once per window/buckets) takes the mutex to reset the bucket it
// reuses. Withdraw, on the resend path only, holds the mutex so that
// concurrent resends cannot together overdraw the budget.
type Budget struct {
	width int64   // bucket width in nanoseconds
	ratio float64 // resends allowed per request
	floor float64 // resends always allowed per window

	mu      sync.Mutex // serializes Withdraw and bucket resets
	buckets [buckets]bucket
}

// bucket counts one slice of the window. slot is written only under
// Budget.mu, after the counters were zeroed, so a request that finds its
// slot there counts into a bucket already reset for it.
type bucket struct {
	slot     atomic.Int64 // absolute bucket index (unix nanos / width) it counts for
	requests atomic.Int64
	resends  atomic.Int64 // written under Budget.mu only
}

// New returns a budget allowing ratio resends per request over window, plus
// minPerSecond × window seconds. The caller validates the arguments.
func New(ratio float64, window time.Duration, minPerSecond float64) *Budget {
	w := int64(window) / buckets
	if w < 1 {
		w = 1
	}
	return &Budget{width: w, ratio: ratio, floor: minPerSecond * window.Seconds()}
}

// current returns the bucket for now, reset if it held an older slot, and
// the slot of now.
func (b *Budget) current(now time.Time) (*bucket, int64) {
	slot := now.UnixNano() / b.width
	bk := &b.buckets[slot%buckets]
	if bk.slot.Load() < slot {
		b.mu.Lock()
		b.resetLocked(bk, slot)
		b.mu.Unlock()
	}
	return bk, slot
}

// resetLocked empties bk for slot unless another caller already did. A
// bucket holding a later slot (a caller whose clock reading is a full window
// old) is left alone: its request counts in the later slot. b.mu must be held.
func (b *Budget) resetLocked(bk *bucket, slot int64) {
	if bk.slot.Load() >= slot {
		return
	}
	bk.requests.Store(0)
	bk.resends.Store(0)
	bk.slot.Store(slot)
}

// Request records the start of a call (its first attempt).
func (b *Budget) Request(now time.Time) {
	bk, _ := b.current(now)
	bk.requests.Add(1)
}

// Withdraw takes one resend from the budget, reporting whether there was one.
func (b *Budget) Withdraw(now time.Time) bool { return b.WithdrawShare(now, 1) }

// WithdrawShare takes one resend only while the resends of the window,
// this one included, stay within share of what the budget allows (share 1:
// Withdraw), reporting whether it did. Hedges take theirs with share 0.5
// (transport/retry's spareBudget), so that once half the budget is spent
// the other half is left to retries, which rescue calls that failed, where a
// hedge only speeds up one that is slow. gRPC's retry throttling stops
// hedges and retries alike at half its tokens (gRFC A6); here retries go on.
func (b *Budget) WithdrawShare(now time.Time, share float64) bool {
	slot := now.UnixNano() / b.width
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := &b.buckets[slot%buckets]
	b.resetLocked(cur, slot)
	var reqs, resends int64
	for i := range b.buckets {
		bk := &b.buckets[i]
		if s := bk.slot.Load(); s > slot-buckets && s <= slot {
			reqs += bk.requests.Load()
			resends += bk.resends.Load()
		}
	}
	if float64(resends+1) > share*(b.ratio*float64(reqs)+b.floor) {
		return false
	}
	cur.resends.Add(1)
	return true
}
