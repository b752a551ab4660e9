package main

import (
	"context"
	"time"

	"github.com/outboundhttp/outbound/transport/chaos"
)

// runClosedLoop plays a closed-loop drill (the overload scenario) against a
// fresh chaos Server with the client cs and returns its scorecard row.
//
// Unlike the open-loop drills, where calls arrive at a fixed rate whatever
// the upstream does, here each of the callers makes call after call until
// the duration is over, each call with its own deadline: the load a service
// puts on a dependency when each of its workers waits for one answer before
// asking again. A client that fails calls fast is called again at once, so
// the drill shows what a client does to an upstream that has less capacity
// than its callers want: how much of that capacity turns into successful
// calls (goodput), how many calls fail, and how many requests it makes the
// upstream shed.
func runClosedLoop(ctx context.Context, sc scenario, cs clientSpec, cfg drillConfig) (Result, error) {
	ov := *sc.closed
	srv, url, c, err := startClosedLoop(sc, cs, cfg, clientEnv{budget: cfg.budget, seed: cfg.seed, tracing: cfg.tracing})
	if err != nil {
		return Result{}, err
	}
	defer srv.Close()

	start := time.Now()
	end := start.Add(ov.duration)
	calls := playClosedLoop(ctx, cfg, sc, cs, c, url, ov.callers, end, ov.deadline)
	c.close()
	srv.Close() // waits for the handlers, so every request is recorded
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}

	var all []callResult
	good := 0
	for _, cc := range calls {
		for _, cr := range cc {
			if cr.outcome == outcomeOK && !cr.end.After(end) {
				good++
			}
		}
		all = append(all, cc...)
	}
	res := score(cs.name, all, []*chaos.Server{srv}, cfg.budget)
	res.GoodputPerSec = float64(good) / ov.duration.Seconds()
	res.CapacityShare = res.GoodputPerSec / ov.capacity()
	return res, nil
}
