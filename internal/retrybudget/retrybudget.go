// Package retrybudget is the retry budget of one upstream: over a sliding
// window, resends (retries and hedges) may add at most a ratio of the
// requests started, plus a small floor. The retry layer keeps one per
// upstream; the hedge layer spends the retry layer's when one is above it
// (through internal/callctx) and keeps its own otherwise, with the same
// defaults.
package retrybudget

import (
	"sync"
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
type Budget struct {
	width int64   // bucket width in nanoseconds
	ratio float64 // resends allowed per request
	floor float64 // resends always allowed per window

	mu      sync.Mutex
	buckets [buckets]bucket
}

type bucket struct {
	slot     int64 // absolute bucket index (unix nanos / width) it counts for
	requests int64
	resends  int64
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

// current returns the bucket for now, resetting it if it held an older slot.
// The caller holds b.mu.
func (b *Budget) current(now time.Time) (*bucket, int64) {
	slot := now.UnixNano() / b.width
	bk := &b.buckets[slot%buckets]
	if bk.slot != slot {
		*bk = bucket{slot: slot}
	}
	return bk, slot
}

// Request records the start of a call (its first attempt).
func (b *Budget) Request(now time.Time) {
	b.mu.Lock()
	bk, _ := b.current(now)
	bk.requests++
	b.mu.Unlock()
}

// Withdraw takes one resend from the budget, reporting whether there was one.
func (b *Budget) Withdraw(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur, slot := b.current(now)
	var reqs, resends int64
	for i := range b.buckets {
		bk := &b.buckets[i]
		if bk.slot > slot-buckets && bk.slot <= slot {
			reqs += bk.requests
			resends += bk.resends
		}
	}
	if float64(resends+1) > b.ratio*float64(reqs)+b.floor {
		return false
	}
	cur.resends++
	return true
}
