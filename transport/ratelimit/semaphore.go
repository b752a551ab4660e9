package ratelimit

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/outboundhttp/outbound/internal/clock"
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
//
// The queue is a list threaded through its waiters, and a waiter that is
// done (granted, timed out or abandoned) goes back to a pool with its channel
// and timer for the next wait: under a burst or a limit below the callers,
// every attempt waits, and a waiter, a list element and a timer made per
// wait were three allocations on that path.
type semaphore struct {
	queue int

	max     atomic.Int64
	cur     atomic.Int64 // slots held
	peak    atomic.Int64 // most slots held at once since the last resetPeak
	waiting atomic.Int64 // waiters.Len(), readable without the mutex

	mu         sync.Mutex
	head, tail *waiter // the queue, longest waiter first
	n          int     // waiters in the queue

	pool sync.Pool // of *waiter made outside a testing/synctest bubble
}

// waiter is one place in the queue.
type waiter struct {
	// granted receives the slot. It is buffered so that grant sends instead
	// of closing it, and the waiter can serve another wait.
	granted    chan struct{}
	prev, next *waiter
	queued     bool        // in the queue; guarded by the semaphore's mutex
	start      time.Time   // when it joined the queue
	timer      *time.Timer // the wait's bound, made by the first wait that needs one
	pooled     bool        // made outside a bubble: it goes back to the pool
}

func newSemaphore(max, queue int) *semaphore {
	s := &semaphore{queue: queue}
	s.max.Store(int64(max))
	return s
}

// enter takes a slot if one is free and nobody is waiting (ok). Otherwise it
// joins the queue and returns the waiter to pass to ready/leave, and to
// recycle once the wait is over, or reports full when the queue has no
// room.
func (s *semaphore) enter() (w *waiter, ok, full bool) {
	if s.waiting.Load() == 0 && s.tryTake() {
		return nil, true, false
	}
	if s.waiting.Load() >= int64(s.queue) {
		// The queue looks full: a refusal needs no waiter (nor the clock
		// reading and the pool a waiter costs), so look under the mutex
		// first, as below.
		s.mu.Lock()
		took, full := s.n == 0 && s.tryTake(), s.n >= s.queue
		s.mu.Unlock()
		if took || full {
			return nil, took, !took
		}
	}
	w = s.newWaiter(time.Now())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 && s.tryTake() {
		s.recycle(w)
		return nil, true, false
	}
	if s.n >= s.queue {
		s.recycle(w)
		return nil, false, true
	}
	s.push(w)
	// A slot released between the tryTake above and waiting.Add was not
	// handed to anyone (its releaser saw no waiter): take it for the queue.
	s.grant()
	return w, false, false
}

// newWaiter returns a waiter that joins the queue at now, from the pool when
// now was read outside a testing/synctest bubble. A bubble's channels and
// timers must not be used outside it, nor others' waited on inside it
// (synctest would not see the wait as durable), so waiters made in a bubble
// are never pooled and never taken from the pool (clock.InBubble).
func (s *semaphore) newWaiter(now time.Time) *waiter {
	pooled := !clock.InBubble(now)
	if pooled {
		if w, _ := s.pool.Get().(*waiter); w != nil {
			w.start = now
			return w
		}
	}
	return &waiter{granted: make(chan struct{}, 1), start: now, pooled: pooled}
}

// recycle gives back a waiter whose wait is over: out of the queue, its slot
// received or handed on (leave), its timer stopped or fired and drained.
func (s *semaphore) recycle(w *waiter) {
	if w.pooled {
		s.pool.Put(w)
	}
}

// push appends w to the queue. s.mu must be held.
func (s *semaphore) push(w *waiter) {
	w.prev, w.next, w.queued = s.tail, nil, true
	if s.tail == nil {
		s.head = w
	} else {
		s.tail.next = w
	}
	s.tail = w
	s.n++
	s.waiting.Add(1)
}

// remove takes w out of the queue. s.mu must be held.
func (s *semaphore) remove(w *waiter) {
	if w.prev == nil {
		s.head = w.next
	} else {
		w.prev.next = w.next
	}
	if w.next == nil {
		s.tail = w.prev
	} else {
		w.next.prev = w.prev
	}
	w.prev, w.next, w.queued = nil, nil, false
	s.n--
	s.waiting.Add(-1)
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

// ready returns the channel that receives w's slot, once.
func ready(w *waiter) <-chan struct{} { return w.granted }

// leave takes w out of the queue after its wait was abandoned. If the slot
// was granted in the meantime, it is given back, as if never taken.
func (s *semaphore) leave(w *waiter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.queued {
		s.remove(w)
		return
	}
	// Granted just as the wait ended (grant sent the slot under the mutex,
	// so it is there): take it out of the channel and pass it on.
	<-w.granted
	s.cur.Add(-1)
	s.grant()
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
		front := s.head
		if front == nil || !s.tryTake() {
			return
		}
		s.remove(front)
		front.granted <- struct{}{} // never blocks: one send per wait, into a buffer of one
	}
}

// limit returns the number of slots allowed now.
func (s *semaphore) limit() int { return int(s.max.Load()) }

// inUse returns the number of slots taken and of waiters.
func (s *semaphore) inUse() (cur, waiting int) {
	return int(s.cur.Load()), int(s.waiting.Load())
}
