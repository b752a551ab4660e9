package chaos

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"
)

// engine decides, request by request, which faults fire. It is shared by
// Transport and Server so both play a Scenario identically.
type engine struct {
	faults []Fault

	mu       sync.Mutex
	rng      *rand.Rand // guarded by mu
	start    time.Time  // guarded by mu
	fired    []int      // per fault, guarded by mu
	requests int        // guarded by mu
}

// decision is what happens to one request.
type decision struct {
	delay time.Duration
	// answer is the fault that decides the answer (Status, Reset, Hang),
	// body the one that slows the body (Stall, Trickle); nil when none fired.
	answer, body *Fault
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
	e := &engine{faults: fs, fired: make([]int, len(fs)), start: start}
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
		case f.Kind == KindLatency:
			d.delay += f.latency(r)
		case f.Kind.decides() && d.answer == nil:
			d.answer = f
		case f.Kind.slowsBody() && d.body == nil:
			d.body = f
		default:
			continue // a fault of the same class already fired: not counted
		}
		e.fired[i]++
	}
	return d
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
	// Fired counts, per fault kind, how many times faults of that kind fired.
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
