package ratelimit

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSemaphoreStress: many goroutines taking and giving back slots through
// the lock-free fast path and the queue at once never hold more than the
// limit, every waiter is eventually granted (no wakeup lost between a release
// and a newcomer joining the queue), and everything is given back.
func TestSemaphoreStress(t *testing.T) {
	for _, c := range []struct{ limit, workers, rounds int }{
		{1, 2, 20000}, // two workers on one slot: a lost wakeup leaves both queued
		{3, 8, 2000},
	} {
		s := newSemaphore(c.limit, c.workers)
		var held, most atomic.Int64
		var wg sync.WaitGroup
		for range c.workers {
			wg.Go(func() {
				for range c.rounds {
					w, ok, full := s.enter()
					if full {
						t.Error("queue full with one place per worker")
						return
					}
					if !ok {
						<-ready(w)
					}
					n := held.Add(1)
					for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
					}
					held.Add(-1)
					s.release()
				}
			})
		}
		finished := make(chan struct{})
		go func() { wg.Wait(); close(finished) }()
		select {
		case <-finished:
		case <-time.After(20 * time.Second):
			cur, waiting := s.inUse()
			t.Fatalf("limit %d, %d workers: stuck with %d held and %d waiting (a wakeup was lost)", c.limit, c.workers, cur, waiting)
		}
		if got := most.Load(); got > int64(c.limit) {
			t.Errorf("limit %d: slots held at once: got %d", c.limit, got)
		}
		if cur, waiting := s.inUse(); cur != 0 || waiting != 0 {
			t.Errorf("limit %d: after every release: got %d held, %d waiting; want 0, 0", c.limit, cur, waiting)
		}
	}
}

// TestSemaphoreSetMaxGrants: raising the limit grants waiters at once,
// lowering it revokes nothing and holds newcomers until enough slots are
// given back.
func TestSemaphoreSetMaxGrants(t *testing.T) {
	s := newSemaphore(1, 4)
	if _, ok, _ := s.enter(); !ok {
		t.Fatal("first enter queued")
	}
	w, ok, _ := s.enter()
	if ok {
		t.Fatal("second enter took a slot over the limit")
	}
	s.setMax(2)
	select {
	case <-ready(w):
	default:
		t.Fatal("raising the limit did not grant the waiter")
	}
	s.setMax(1)
	s.release() // 1 held, limit 1
	if _, ok, _ := s.enter(); ok {
		t.Fatal("a newcomer took a slot above the lowered limit")
	}
	if cur, waiting := s.inUse(); cur != 1 || waiting != 1 {
		t.Errorf("got %d held, %d waiting; want 1, 1", cur, waiting)
	}
}
