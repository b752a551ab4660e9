package main

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/outboundhttp/outbound/transport/chaos"
)

// scenario is one named failure drill: the faults each upstream host plays,
// the method of the calls and the window over which calls arrive.
//
// Durations are given at time scale 1 and multiplied by -timescale, except
// Retry-After, which HTTP only carries in whole seconds (RFC 9110 §10.2.3).
type scenario struct {
	name string // the -scenario name
	desc string // one line for the scorecard
	// hosts is the number of upstream servers; call k goes to host k % hosts.
	hosts  int
	method string
	// span is the window over which the calls arrive, evenly spaced.
	span time.Duration
	// faults returns the faults of host h, with durations multiplied by s.
	faults func(h int, s scale) []chaos.Fault
	// closed, when set, makes the drill a closed loop (see runClosedLoop):
	// callers that make call after call for a duration, instead of calls
	// arriving over span.
	closed *overload
	// stragglers, when set, makes the drill a closed loop against a slow
	// tail (runStragglers), scored by latency quantiles and extra requests.
	stragglers *stragglers
	// keys makes the upstream honour Idempotency-Key (chaos.WithIdempotency)
	// and turns outbound's IdempotencyKeys on; the other clients are as
	// they always are.
	keys bool
}

// overload is the upstream and the callers of the overload drill, set by the
// -overload-* flags. Its time scale is its own: -timescale does not apply.
type overload struct {
	// The upstream: workers workers, each taking work per request, behind a
	// queue; a 503 at once when shedAbove requests are in flight.
	workers   int
	work      time.Duration
	shedAbove int
	// The callers: each makes call after call for duration, each call with
	// its own deadline.
	callers  int
	duration time.Duration
	deadline time.Duration
}

func defaultOverload() overload {
	return overload{workers: 16, work: 10 * time.Millisecond, shedAbove: 48,
		callers: 200, duration: 4 * time.Second, deadline: 2 * time.Second}
}

// capacity is the most calls per second the upstream can complete.
func (o overload) capacity() float64 { return float64(o.workers) / o.work.Seconds() }

// validate reports a flag value the drill cannot run with.
func (o overload) validate() error {
	switch {
	case o.workers < 1:
		return fmt.Errorf("-overload-workers %d: want at least 1", o.workers)
	case o.work <= 0:
		return fmt.Errorf("-overload-work %v: want a positive duration", o.work)
	case o.shedAbove < o.workers:
		return fmt.Errorf("-overload-shed %d: want at least -overload-workers (%d), or some workers could never be busy", o.shedAbove, o.workers)
	case o.callers < 1:
		return fmt.Errorf("-overload-callers %d: want at least 1", o.callers)
	case o.duration <= 0:
		return fmt.Errorf("-overload-duration %v: want a positive duration", o.duration)
	case o.deadline <= 0:
		return fmt.Errorf("-overload-deadline %v: want a positive duration", o.deadline)
	}
	return nil
}

// scale multiplies the durations of a scenario's timeline.
type scale float64

func (s scale) d(d time.Duration) time.Duration { return time.Duration(float64(d) * float64(s)) }

// allScenarios returns the drills in the order they are printed: the
// reference article's "timeouts, 429 bursts, partial outages", the failures
// that make naive retry policies harmful, and an upstream overloaded by
// callers that want more than its capacity, with the settings ov.
func allScenarios(ov overload) []scenario {
	return []scenario{
		{
			name: "transient-5xx", desc: "10 % of attempts answered 503",
			hosts: 1, method: http.MethodGet, span: 4 * time.Second,
			faults: func(int, scale) []chaos.Fault {
				return []chaos.Fault{chaos.Status(http.StatusServiceUnavailable).WithProbability(0.10)}
			},
		},
		{
			name: "429-burst", desc: "every attempt answered 429 with Retry-After: 1 from 1 s to 3 s",
			hosts: 1, method: http.MethodGet, span: 5 * time.Second,
			faults: func(_ int, s scale) []chaos.Fault {
				return []chaos.Fault{chaos.Burst(0, time.Second).During(s.d(time.Second), s.d(3*time.Second))}
			},
		},
		{
			name: "full-outage", desc: "every attempt answered 503 for the whole drill",
			hosts: 1, method: http.MethodGet, span: 5 * time.Second,
			faults: func(int, scale) []chaos.Fault {
				return []chaos.Fault{chaos.Outage(0, 0)}
			},
		},
		{
			name: "outage-recovery", desc: "every attempt answered 503 for the first half of the drill (3 s), then healthy",
			hosts: 1, method: http.MethodGet, span: 6 * time.Second,
			faults: func(_ int, s scale) []chaos.Fault {
				return []chaos.Fault{chaos.Outage(0, s.d(3*time.Second))}
			},
		},
		{
			name: "partial-outage", desc: "one host of three resets every connection; calls round-robin",
			hosts: 3, method: http.MethodGet, span: 5 * time.Second,
			faults: func(h int, _ scale) []chaos.Fault {
				if h != 2 {
					return nil
				}
				return []chaos.Fault{chaos.ConnReset()}
			},
		},
		{
			name: "latency", desc: "5-50 ms latency, 5 % spikes of 2 s, 2 % of attempts hang",
			hosts: 1, method: http.MethodGet, span: 5 * time.Second,
			faults: func(_ int, s scale) []chaos.Fault {
				return []chaos.Fault{
					chaos.LatencyUniform(s.d(5*time.Millisecond), s.d(50*time.Millisecond)),
					chaos.Latency(s.d(2 * time.Second)).WithProbability(0.05),
					chaos.Hang().WithProbability(0.02),
				}
			},
		},
		stragglersScenario(defaultStragglers()),
		{
			name: "resets", desc: "POST without Idempotency-Key; 20 % of attempts reset after the request arrived",
			hosts: 1, method: http.MethodPost, span: 4 * time.Second,
			faults: func(int, scale) []chaos.Fault {
				return []chaos.Fault{chaos.ConnReset().WithProbability(0.20)}
			},
		},
		{
			name: "resets-keyed", desc: "the same resets, against an upstream that honours Idempotency-Key (chaos.WithIdempotency); outbound with IdempotencyKeys on",
			hosts: 1, method: http.MethodPost, span: 4 * time.Second, keys: true,
			faults: func(int, scale) []chaos.Fault {
				return []chaos.Fault{chaos.ConnReset().WithProbability(0.20)}
			},
		},
		{
			name: "stalls", desc: "10 % of bodies stall after 4 bytes, 10 % trickle 1 byte per 50 ms",
			hosts: 1, method: http.MethodGet, span: 4 * time.Second,
			faults: func(_ int, s scale) []chaos.Fault {
				return []chaos.Fault{
					chaos.Stall(4).WithProbability(0.10),
					chaos.Trickle(1, s.d(50*time.Millisecond)).WithProbability(0.10),
				}
			},
		},
		{
			name: "overload",
			desc: fmt.Sprintf("%d callers, call after call for %v, %v deadline each; upstream of %d workers × %v (%.0f calls/s), 503 at once when %d are in flight",
				ov.callers, ov.duration, ov.deadline, ov.workers, ov.work, ov.capacity(), ov.shedAbove),
			hosts: 1, method: http.MethodGet, closed: &ov,
			faults: func(int, scale) []chaos.Fault {
				return []chaos.Fault{chaos.Capacity(ov.workers, ov.work, ov.shedAbove)}
			},
		},
	}
}

// selectScenarios resolves the -scenario flag: "all", or a comma-separated
// list of names. The overload drill plays ov.
func selectScenarios(spec string, ov overload) ([]scenario, error) {
	all := allScenarios(ov)
	if spec == "" || spec == "all" {
		return all, nil
	}
	var out []scenario
	for _, name := range strings.Split(spec, ",") {
		name = strings.TrimSpace(name)
		found := false
		for _, sc := range all {
			if sc.name == name {
				out = append(out, sc)
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown scenario %q (want all or one of %s)", name, scenarioNames())
		}
	}
	return out, nil
}

func scenarioNames() string {
	all := allScenarios(defaultOverload())
	names := make([]string, len(all))
	for i, sc := range all {
		names[i] = sc.name
	}
	return strings.Join(names, ", ")
}
