package ratelimit

import (
	"context"
	"errors"
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

// TestSemaphoreRecycledWaiterCarriesNoSlot: a waiter granted a slot just as
// it gave up hands the slot on (leave) and goes back to the pool empty, so a
// wait that reuses it is not granted a slot nobody gave (which would let a
// caller past the limit).
func TestSemaphoreRecycledWaiterCarriesNoSlot(t *testing.T) {
	s := newSemaphore(1, 4)
	if _, ok, _ := s.enter(); !ok {
		t.Fatal("first enter queued")
	}
	// Many rounds, so that the pool hands the waiter back in most of them
	// (under the race detector sync.Pool drops some of what it is given).
	for i := range 200 {
		w, ok, _ := s.enter()
		if ok {
			t.Fatalf("round %d: took a slot over the limit", i)
		}
		s.release() // granted to w, which has not received it
		s.leave(w)  // w gave up anyway: the slot goes back
		s.recycle(w)
		if cur, waiting := s.inUse(); cur != 0 || waiting != 0 {
			t.Fatalf("round %d: %d held, %d waiting after leave; want 0, 0", i, cur, waiting)
		}
		if _, ok, _ := s.enter(); !ok {
			t.Fatalf("round %d: the free slot was not taken", i)
		}
		w2, ok, _ := s.enter()
		if ok {
			t.Fatalf("round %d: took a second slot", i)
		}
		select {
		case <-ready(w2):
			t.Fatalf("round %d: a recycled waiter was granted a slot nobody released", i)
		default:
		}
		s.leave(w2)
		s.recycle(w2)
	}
}

// TestQueueRecycledWaiterWaitsAnew: outside a synctest bubble waiters and
// their timers are reused; a reused timer must bound the next wait afresh,
// never fire at once with the last wait's expiry, whether that wait timed
// out or was canceled. Timers never fire early, so the lower bound below
// holds on any machine.
func TestQueueRecycledWaiterWaitsAnew(t *testing.T) {
	const timeout = 20 * time.Millisecond
	rt := slotHeld(t, timeout)
	for i := range 6 {
		if i%2 == 1 {
			// A wait its caller's deadline ends, whose waiter is reused next.
			ctx, cancel := context.WithTimeout(context.Background(), timeout/10)
			r, _ := newReq(t, ctx, "http://a.test/")
			_, err := rt.RoundTrip(r)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("round %d: wait past the caller's deadline: %v; want context.DeadlineExceeded", i, err)
			}
		}
		refusedAfterTimeout(t, rt, i, timeout)
	}
	if c, w := rt.states.Get("http://a.test:80").sem.inUse(); c != 1 || w != 0 {
		t.Fatalf("slots %d, waiters %d; want 1, 0", c, w)
	}
}

// TestSemaphoreFullQueueRefusesWithoutWaiter: with the queue full, enter
// refuses, and takes a slot that is free by the time it looks under the
// mutex; many goroutines at once on one slot and no queue never hold more
// than the limit, and give everything back.
func TestSemaphoreFullQueueRefusesWithoutWaiter(t *testing.T) {
	s := newSemaphore(1, 0)
	if _, ok, _ := s.enter(); !ok {
		t.Fatal("first enter refused")
	}
	if w, ok, full := s.enter(); ok || !full || w != nil {
		t.Fatalf("enter with the slot held and no queue: waiter %v, ok %v, full %v; want a refusal", w, ok, full)
	}
	s.release()
	var held, most, refused atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20000 {
				_, ok, full := s.enter()
				if !ok {
					if !full {
						t.Error("no queue, yet told to wait")
						return
					}
					refused.Add(1)
					continue
				}
				n := held.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				held.Add(-1)
				s.release()
			}
		})
	}
	wg.Wait()
	if got := most.Load(); got > 1 {
		t.Errorf("slots held at once: got %d; want at most 1", got)
	}
	if cur, waiting := s.inUse(); cur != 0 || waiting != 0 {
		t.Errorf("after every release: got %d held, %d waiting; want 0, 0", cur, waiting)
	}
	t.Logf("%d of 80000 refused", refused.Load())
}
