package hedge

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
)

// Sketch parameters. A DDSketch answers any quantile within a relative error
// (here 1 %: a p95 of 5 ms reads between 4.95 and 5.05 ms) with bounded
// memory: at most sketchMaxBins counters of 8 bytes, which at 1 % cover
// latencies over eight orders of magnitude (1 µs to minutes) before the
// lowest bins, the ones a high quantile never reads, are merged.
const (
	sketchAccuracy = 0.01
	sketchMaxBins  = 1024
	// The quantile is computed afresh after this many new latencies, or
	// this long after the last computation, whichever comes first; the
	// request path reads the last result from an atomic.
	recomputeEvery = 64
	recomputeAfter = time.Second
)

// latency tracks one upstream's latencies to response headers and the delay
// they give: max(floor, min(quantile q, MaxDelayMedians × median)) of the
// last one to two windows. It is safe for concurrent use.
type latency struct {
	q          float64
	floor      time.Duration
	window     time.Duration
	minSamples float64

	// Every call records a latency, so recording takes no lock (issue 18:
	// no lock shared by every call to one upstream). A latency goes into a
	// ring of atomics; the call that finds a computation due drains the
	// ring into the sketches and computes the delay under mu, which it only
	// tries to take: a call that finds it taken leaves its latency to the
	// drain under way or the next one.
	ring    [ringSize]atomic.Int64 // latencies in nanoseconds + 1; 0: empty
	claimed atomic.Uint64          // ring slots handed out
	due     atomic.Bool            // a computation is due (recomputeEvery latencies since the last)
	// unix nanoseconds of the last computation
	computedAt atomic.Int64

	mu        sync.Mutex
	cur, prev *ddsketch.DDSketch // the current window and the one before
	merged    *ddsketch.DDSketch // scratch: prev + cur, for the quantile
	rotated   time.Time          // start of cur's window
	drained   uint64             // ring slots handed out before the last drain

	delay      atomic.Int64 // nanoseconds; < 0 while too few latencies are known
	validUntil atomic.Int64 // unix nanoseconds from which delay is stale: two windows after the last latency
}

// ringSize is the ring's number of slots: room for four computations'
// worth of latencies, so that a drain may come a little late (its mutex held
// by the drain before) before a call finds its slot still full. That call
// moves the latency it finds into the window itself, under the mutex: no
// latency is lost.
const ringSize = 4 * recomputeEvery

func newLatency(c *config) *latency {
	l := &latency{
		q:          c.quantile,
		floor:      c.delay,
		window:     DefaultLatencyWindow,
		minSamples: DefaultMinSamples,
		cur:        newSketch(),
		prev:       newSketch(),
		merged:     newSketch(),
	}
	l.delay.Store(-1)
	return l
}

func newSketch() *ddsketch.DDSketch {
	s, err := ddsketch.LogCollapsingLowestDenseDDSketch(sketchAccuracy, sketchMaxBins)
	if err != nil {
		panic("hedge: " + err.Error()) // constant, valid arguments
	}
	return s
}

// current returns the delay to use now, or false while it is not known:
// too few latencies, or none for two windows.
func (l *latency) current(now time.Time) (time.Duration, bool) {
	d := l.delay.Load()
	if d < 0 || now.UnixNano() >= l.validUntil.Load() {
		return 0, false
	}
	return time.Duration(d), true
}

// observe records one latency d measured at now. The delay is computed
// afresh every recomputeEvery latencies, recomputeAfter after the last
// computation, and at every latency while it is not known.
func (l *latency) observe(now time.Time, d time.Duration) {
	n := l.claimed.Add(1)
	if old := l.ring[(n-1)%ringSize].Swap(int64(max(d, 0)) + 1); old != 0 {
		// The ring came round before a drain took this slot's latency:
		// into the window it goes, under the lock it waits for only then.
		l.mu.Lock()
		l.cur.Add(time.Duration(old - 1).Seconds())
		l.mu.Unlock()
	}
	// Written when it moves by a second or more, not by every call: every
	// core's calls would otherwise write the same word. The delay then goes
	// stale at most a second early, of two windows (60 s by default).
	v := now.Add(2 * l.window).UnixNano()
	for old := l.validUntil.Load(); v-old >= int64(time.Second); old = l.validUntil.Load() {
		if l.validUntil.CompareAndSwap(old, v) {
			break // never moved back by a call that read the clock earlier
		}
	}
	if n%recomputeEvery == 0 {
		l.due.Store(true)
	}
	if !l.due.Load() && l.delay.Load() >= 0 && now.UnixNano()-l.computedAt.Load() < int64(recomputeAfter) {
		return
	}
	if !l.mu.TryLock() {
		return // the drain under way, or the next, takes this latency
	}
	defer l.mu.Unlock()
	l.due.Store(false)
	l.rotate(now)
	l.drain()
	l.recompute(now)
}

// drain moves the latencies recorded since the last drain into the current
// window. A slot handed out but not yet written is passed over; its latency
// stays in the ring until the call the ring next hands that slot to moves it
// into the window. l.mu is held.
func (l *latency) drain() {
	to := l.claimed.Load()
	from := max(l.drained, to-min(to, ringSize))
	for n := from; n < to; n++ {
		if v := l.ring[n%ringSize].Swap(0); v != 0 {
			l.cur.Add(time.Duration(v - 1).Seconds()) // cannot fail for a finite, non-negative value
		}
	}
	l.drained = to
}

// rotate starts a new window when the current one is over: the current
// sketch becomes the previous one and the oldest is dropped, so a latency
// counts for one to two windows (a latency still in the ring counts from
// the drain that takes it, at the next computation). l.mu is held.
func (l *latency) rotate(now time.Time) {
	el := now.Sub(l.rotated)
	if el < l.window {
		return
	}
	l.prev, l.cur = l.cur, l.prev
	l.cur.Clear()
	if el >= 2*l.window {
		l.prev.Clear() // nothing recent at all
	}
	l.rotated = now
}

// recompute computes the delay from both windows. l.mu is held.
func (l *latency) recompute(now time.Time) {
	l.computedAt.Store(now.UnixNano())
	if l.cur.GetCount()+l.prev.GetCount() < l.minSamples {
		l.delay.Store(-1)
		return
	}
	l.merged.Clear()
	l.merged.MergeWith(l.prev) // same mapping: cannot fail
	l.merged.MergeWith(l.cur)
	v, err := l.merged.GetValueAtQuantile(l.q)
	if err != nil {
		l.delay.Store(-1)
		return
	}
	// Never more than MaxDelayMedians times the median: when more than
	// 1 - q of the attempts are pathologically slow (the latency drill: 5 %
	// spikes of 2 s and 2 % hangs), the quantile lies among them, and a
	// hedge sent then comes too late to cut anything.
	if m, err := l.merged.GetValueAtQuantile(0.5); err == nil {
		v = min(v, MaxDelayMedians*m)
	}
	// The sketch answers with a value within 1 % of the quantile, which may
	// lie below it; the delay takes the top of that range instead, so that
	// attempts as fast as the quantile itself are not hedged.
	v /= 1 - sketchAccuracy
	l.delay.Store(int64(max(l.floor, time.Duration(v*float64(time.Second)))))
}
