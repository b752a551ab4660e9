package ratelimit

import (
	"container/list"
	"sync"
	"sync/atomic"
)

// semaphore is a counting semaphore with a bounded FIFO queue of waiters, in
// the manner of golang.org/x/sync/semaphore with every request weighing one.
// x/sync's has neither a bound on its waiters nor a limit that can move,
// which the queue length and the adaptive limit need. FIFO matters: a free slot goes to the
// longest waiter, never to a newcomer, so no waiter starves under load.
//
// Its limit may move (setMax, for the adaptive limit): raising it grants
// waiters at once; lowering it takes effect as slots are released, never by
// revoking a slot already held.
//
// Every attempt to an upstream takes and gives back a slot, so neither takes
// the mutex while a slot is free and nobody waits: enter claims one with a
// compare-and-swap on cur below max, release gives it back with an atomic
// add. The mutex guards the queue only. A releaser and a newcomer that joins
// the queue cannot miss each other: the releaser lowers cur and then looks
// for waiters, the newcomer counts itself a waiter and then looks for a free
// slot (both sequentially consistent atomics), so one of them sees the other
// and hands out the slot under the mutex.
type semaphore struct {
	queue int

	max     atomic.Int64
	cur     atomic.Int64 // slots held
	peak    atomic.Int64 // most slots held at once since the last resetPeak
	waiting atomic.Int64 // waiters.Len(), readable without the mutex

	mu      sync.Mutex
	waiters list.List // of chan struct{}; closed when the slot is granted
}

func newSemaphore(max, queue int) *semaphore {
	s := &semaphore{queue: queue}
	s.max.Store(int64(max))
	return s
}

// enter takes a slot if one is free and nobody is waiting (ok). Otherwise it
// joins the queue and returns the waiter to pass to wait/leave, or reports
// full when the queue has no room.
func (s *semaphore) enter() (w *list.Element, ok, full bool) {
	if s.waiting.Load() == 0 && s.tryTake() {
		return nil, true, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiters.Len() == 0 && s.tryTake() {
		return nil, true, false
	}
	if s.waiters.Len() >= s.queue {
		return nil, false, true
	}
	w = s.waiters.PushBack(make(chan struct{}))
	s.waiting.Add(1)
	// A slot released between the tryTake above and waiting.Add was not
	// handed to anyone (its releaser saw no waiter): take it for the queue.
	s.grant()
	return w, false, false
}

// tryTake claims a slot if cur is below max.
func (s *semaphore) tryTake() bool {
	for {
		c := s.cur.Load()
		if c >= s.max.Load() {
			return false
		}
		if s.cur.CompareAndSwap(c, c+1) {
			s.notePeak(c + 1)
			return true
		}
	}
}

// notePeak raises peak to n if it is lower. It writes only when the peak
// moves, so at a steady load it is a read.
func (s *semaphore) notePeak(n int64) {
	for {
		p := s.peak.Load()
		if n <= p || s.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

// resetPeak starts a new peak from the slots held now.
func (s *semaphore) resetPeak() { s.peak.Store(s.cur.Load()) }

// ready returns the channel closed when w is granted a slot.
func ready(w *list.Element) <-chan struct{} { return w.Value.(chan struct{}) }

// leave takes w out of the queue after its wait was abandoned. If the slot
// was granted in the meantime, it is given back, as if never taken.
func (s *semaphore) leave(w *list.Element) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-ready(w):
		// Granted just as the wait ended: pass it on.
		s.cur.Add(-1)
		s.grant()
	default:
		s.waiters.Remove(w)
		s.waiting.Add(-1)
	}
}

// release gives a slot back and hands it to the longest waiter, if any.
func (s *semaphore) release() {
	if s.cur.Add(-1) < 0 {
		panic("ratelimit: semaphore released more than held")
	}
	if s.waiting.Load() > 0 {
		s.mu.Lock()
		s.grant()
		s.mu.Unlock()
	}
}

// setMax moves the limit to n and grants the waiters a raise makes room for.
func (s *semaphore) setMax(n int) {
	s.max.Store(int64(n))
	if s.waiting.Load() > 0 {
		s.mu.Lock()
		s.grant()
		s.mu.Unlock()
	}
}

// grant hands free slots to waiters in FIFO order. s.mu must be held.
func (s *semaphore) grant() {
	for {
		front := s.waiters.Front()
		if front == nil || !s.tryTake() {
			return
		}
		s.waiters.Remove(front)
		s.waiting.Add(-1)
		close(front.Value.(chan struct{}))
	}
}

// limit returns the number of slots allowed now.
func (s *semaphore) limit() int { return int(s.max.Load()) }

// inUse returns the number of slots taken and of waiters.
func (s *semaphore) inUse() (cur, waiting int) {
	return int(s.cur.Load()), int(s.waiting.Load())
}
