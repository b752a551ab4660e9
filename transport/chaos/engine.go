package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// engine decides, request by request, which faults fire. It is shared by
// Transport and Server so both play a Scenario identically.
type engine struct {
	faults []Fault
	caps   []*capacity // per fault: the state of a KindCapacity fault, else nil

	mu       sync.Mutex
	rng      *rand.Rand // guarded by mu
	start    time.Time  // guarded by mu
	fired    []int      // per fault, guarded by mu
	requests int        // guarded by mu
}

// decision is what happens to one request.
type decision struct {
	delay time.Duration
	// answer is the fault that decides the answer (Status, Reset, Hang, or
	// Capacity when it sheds), body the one that slows the body (Stall,
	// Trickle); nil when none fired.
	answer, body *Fault
	// queue is the capacity that admitted the request: it is in that
	// capacity's flight until wait returns.
	queue *capacity
}

// capacity is the state of one KindCapacity fault, shared by every request
// it matches: the upstream's workers and the count of requests in flight.
type capacity struct {
	work time.Duration
	most int // requests in flight at most (ShedAbove)
	// idle holds the workers not working, each as the time its last work
	// ended on schedule (see wait). A buffered channel is the queue too: the
	// runtime serves blocked receivers in the order they blocked, and a
	// worker given back goes to the longest waiter, not to a newcomer, so
	// the queue is FIFO; a receiver that gives up leaves the queue having
	// taken nothing.
	idle     chan time.Time
	inflight int // admitted and not yet worked; guarded by engine.mu
}

func newEngine(pkgFunc string, faults []Fault, seed int64, start time.Time) *engine {
	fs := make([]Fault, len(faults))
	copy(fs, faults)
	for i, f := range fs {
		if err := f.validate(); err != nil {
			panic(fmt.Sprintf("chaos: %s: Fault[%d] (%s): %v", pkgFunc, i, f.Kind, err))
		}
		fs[i].Header = f.Header.Clone() // the scenario may be reused and changed
	}
	e := &engine{faults: fs, caps: make([]*capacity, len(fs)), fired: make([]int, len(fs)), start: start}
	for i, f := range fs {
		if f.Kind != KindCapacity {
			continue
		}
		if f.Status == 0 {
			fs[i].Status = http.StatusServiceUnavailable
		}
		c := &capacity{work: f.Work, most: f.ShedAbove, idle: make(chan time.Time, f.Workers)}
		for range f.Workers {
			c.idle <- time.Time{}
		}
		e.caps[i] = c
	}
	e.rng = rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
	return e
}

// restart makes now the scenario's start: windows and counts begin again.
// The generator is not reseeded.
func (e *engine) restart(now time.Time) {
	e.mu.Lock()
	e.start = now
	clear(e.fired)
	e.requests = 0
	e.mu.Unlock()
}

// decide rolls the faults for a request to host arriving at now.
func (e *engine) decide(host string, now time.Time) decision {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.requests++
	// Each request takes exactly two words from the scenario's generator and
	// makes all its own draws from a generator seeded with them, so the fault
	// sequence depends only on the seed and on the order of requests — not
	// on which faults happened to be active or how many draws a DelayFunc made.
	r := rand.New(rand.NewPCG(e.rng.Uint64(), e.rng.Uint64()))
	elapsed := now.Sub(e.start)
	var d decision
	shed := -1
	var buf [8]int
	hits := buf[:0] // the faults that fire, counted once the request is not shed
	for i := range e.faults {
		f := &e.faults[i]
		roll := r.Float64()
		if !f.matchHost(host) || elapsed < f.From || (f.Until != 0 && elapsed >= f.Until) ||
			(f.Count != 0 && e.fired[i] >= f.Count) {
			continue
		}
		if p := f.Probability; p != 0 && roll >= p {
			continue
		}
		switch {
		case f.Kind == KindCapacity:
			// The first capacity that matches takes the request in or sheds it.
			if d.queue == nil && shed < 0 {
				if c := e.caps[i]; c.inflight < c.most {
					c.inflight++
					d.queue = c
				} else {
					shed = i
				}
			}
			continue // counted only when it sheds
		case f.Kind == KindLatency:
			d.delay += f.latency(r)
		case f.Kind.decides() && d.answer == nil:
			d.answer = f
		case f.Kind.slowsBody() && d.body == nil:
			d.body = f
		default:
			continue // a fault of the same class already fired: not counted
		}
		hits = append(hits, i)
	}
	if shed >= 0 {
		// Shed at once, as an overloaded server does: nothing else plays on
		// the request, so nothing else counts. The draws were made all the
		// same, so the sequence of faults does not depend on the load.
		e.fired[shed]++
		return decision{answer: &e.faults[shed]}
	}
	for _, i := range hits {
		e.fired[i]++
	}
	return d
}

// wait plays what a request meets before its answer: the injected latency
// and, when a capacity admitted it, the queue and the work. It returns
// ctx.Err() when the context ends first. The request leaves the capacity's
// flight on every path, and gives back the worker it took, if it took one.
func (e *engine) wait(ctx context.Context, sleep sleeper, d decision) error {
	if c := d.queue; c != nil {
		defer func() {
			e.mu.Lock()
			c.inflight--
			e.mu.Unlock()
		}()
	}
	if d.delay > 0 {
		if err := sleep(ctx, d.delay); err != nil {
			return err
		}
	}
	c := d.queue
	if c == nil {
		return nil
	}
	queued := time.Now()
	var free time.Time
	select {
	case free = <-c.idle:
	case <-ctx.Done():
		return ctx.Err()
	}
	// The work starts, on schedule, when both the request and the worker
	// were ready. Timers fire late on a busy machine; a worker whose last
	// work overran by that much makes up for it on a request that was
	// already waiting, so the upstream completes workers/work requests per
	// second when its queue is not empty, however late the timers fire. It
	// makes up for one work time at most, and an idle worker banks nothing.
	now := time.Now()
	start := queued
	if free.After(start) {
		start = free
	}
	if floor := now.Add(-c.work); start.Before(floor) {
		start = floor
	}
	done := start.Add(c.work)
	var err error
	if d := done.Sub(now); d > 0 {
		err = sleep(ctx, d)
	} else {
		err = ctx.Err()
	}
	if err != nil {
		done = time.Now() // the client left: the worker is free at once
	}
	c.idle <- done
	return err
}

func (f *Fault) latency(r *rand.Rand) time.Duration {
	var d time.Duration
	switch {
	case f.DelayFunc != nil:
		d = f.DelayFunc(r)
	case f.MaxDelay > f.Delay:
		d = f.Delay + time.Duration(r.Int64N(int64(f.MaxDelay-f.Delay)+1))
	default:
		d = f.Delay
	}
	return max(d, 0)
}

func (f *Fault) matchHost(host string) bool {
	if f.Host == "" {
		return true
	}
	if strings.EqualFold(f.Host, host) {
		return true
	}
	if _, _, err := net.SplitHostPort(f.Host); err == nil {
		return false // the fault names a port and it differs
	}
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		return false
	}
	return strings.EqualFold(strings.Trim(f.Host, "[]"), h)
}

// Stats counts what a Transport or Server injected.
type Stats struct {
	// Requests is the number of requests seen.
	Requests int
	// Fired counts, per fault kind, how many times faults of that kind fired
	// (a Capacity fault fires when it sheds a request).
	Fired map[Kind]int
}

func (e *engine) stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := Stats{Requests: e.requests, Fired: make(map[Kind]int)}
	for i, n := range e.fired {
		if n > 0 {
			s.Fired[e.faults[i].Kind] += n
		}
	}
	return s
}
