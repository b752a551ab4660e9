package ratelimit

import (
	"container/list"
	"sync"
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
type semaphore struct {
	queue int

	mu      sync.Mutex
	max     int
	cur     int
	peak    int       // most slots held at once since the last resetPeak
	waiters list.List // of chan struct{}; closed when the slot is granted
}

func newSemaphore(max, queue int) *semaphore {
	return &semaphore{max: max, queue: queue}
}

// enter takes a slot if one is free and nobody is waiting (ok). Otherwise it
// joins the queue and returns the waiter to pass to wait/leave, or reports
// full when the queue has no room.
func (s *semaphore) enter() (w *list.Element, ok, full bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur < s.max && s.waiters.Len() == 0 {
		s.take()
		return nil, true, false
	}
	if s.waiters.Len() >= s.queue {
		return nil, false, true
	}
	return s.waiters.PushBack(make(chan struct{})), false, false
}

// take counts one more slot held. s.mu must be held.
func (s *semaphore) take() {
	s.cur++
	if s.cur > s.peak {
		s.peak = s.cur
	}
}

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
		s.cur--
		s.grant()
	default:
		s.waiters.Remove(w)
	}
}

// release gives a slot back and hands it to the longest waiter, if any.
func (s *semaphore) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked()
}

// releaseLocked is release with s.mu held.
func (s *semaphore) releaseLocked() {
	if s.cur <= 0 {
		panic("ratelimit: semaphore released more than held")
	}
	s.cur--
	s.grant()
}

// setMax moves the limit to n and grants the waiters a raise makes room for.
// s.mu must be held.
func (s *semaphore) setMaxLocked(n int) {
	s.max = n
	s.grant()
}

// grant hands free slots to waiters in FIFO order. s.mu must be held.
func (s *semaphore) grant() {
	for s.cur < s.max {
		front := s.waiters.Front()
		if front == nil {
			return
		}
		s.take()
		s.waiters.Remove(front)
		close(front.Value.(chan struct{}))
	}
}

// inUse returns the number of slots taken and of waiters.
func (s *semaphore) inUse() (cur, waiting int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur, s.waiters.Len()
}
