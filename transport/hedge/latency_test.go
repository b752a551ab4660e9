package hedge

import (
	"sync"
	"testing"
	"time"
)

// TestLatencyRingLosesNothing: latencies recorded from many goroutines at
// once, enough to come round the ring many times while drains hold the
// mutex, all reach the windows or wait in the ring for the next call to
// their slot: the ring takes no lock to record, and a call that finds its
// slot still full moves what it finds into the window.
func TestLatencyRingLosesNothing(t *testing.T) {
	cfg := defaultConfig()
	l := newLatency(&cfg)
	const workers, each = 8, 5000
	now := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				l.observe(now, time.Duration(1+(w*each+i)%100)*time.Millisecond)
			}
		})
	}
	wg.Wait()
	l.mu.Lock()
	l.drain()
	got := l.cur.GetCount() + l.prev.GetCount()
	l.mu.Unlock()
	// A slot written after a drain passed it keeps its latency for the call
	// the ring next hands it to; none came here.
	for i := range l.ring {
		if l.ring[i].Load() != 0 {
			got++
		}
	}
	if got != workers*each {
		t.Fatalf("latencies in the windows: got %v; want %d", got, workers*each)
	}
}

// TestLatencyDelayAfterEveryComputation: fed one latency at a time, the
// delay is computed from every latency recorded so far, as when each went
// into the window at once: not known below the minimum, then the quantile
// of all of them.
func TestLatencyDelayAfterEveryComputation(t *testing.T) {
	cfg := defaultConfig()
	l := newLatency(&cfg)
	now := time.Now()
	for i := range DefaultMinSamples - 1 {
		l.observe(now, 5*time.Millisecond)
		if _, ok := l.current(now); ok {
			t.Fatalf("after %d latencies: a delay; want none below %d", i+1, DefaultMinSamples)
		}
	}
	l.observe(now, 5*time.Millisecond)
	d, ok := l.current(now)
	if !ok || d < 5*time.Millisecond || d > 5*time.Millisecond*102/100 {
		t.Fatalf("after %d latencies of 5ms: delay %v %v; want just above 5ms", DefaultMinSamples, d, ok)
	}
	// recomputeEvery more, all slow: the computation at the last one sees
	// them all.
	for range recomputeEvery {
		l.observe(now, 100*time.Millisecond)
	}
	if d, _ := l.current(now); d < 50*time.Millisecond {
		t.Fatalf("after %d latencies of 100ms: delay %v; want it to follow them", recomputeEvery, d)
	}
}
