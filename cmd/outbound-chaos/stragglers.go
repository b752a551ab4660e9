package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"text/tabwriter"
	"time"

	"github.com/outboundhttp/outbound/transport/chaos"
)

// stragglers is the load of the stragglers drill (issue 16): callers that
// make call after call for duration, against an upstream whose latency is
// lognormal around median (σ sigma), with share of its responses factor
// times slower. A slow call is not a failed one: only a second attempt sent
// while the first is still out (a hedge) cuts that tail, never a retry.
type stragglers struct {
	callers  int
	duration time.Duration
	deadline time.Duration
	median   time.Duration
	sigma    float64
	share    float64
	factor   float64
}

// defaultStragglers is the drill's load: 8 callers for 1.2 s per client
// (about 1 600 calls each, enough for a p99 and a rough p99.9), latency
// around 5 ms, 5 % of responses 20 times slower (about 100 ms).
func defaultStragglers() stragglers {
	return stragglers{callers: 8, duration: 1200 * time.Millisecond, deadline: 2 * time.Second,
		median: 5 * time.Millisecond, sigma: 0.25, share: 0.05, factor: 20}
}

// latency is the upstream's latency draw, with its durations multiplied by s.
func (st stragglers) latency(s scale) func(*rand.Rand) time.Duration {
	median := s.d(st.median)
	return func(r *rand.Rand) time.Duration {
		d := time.Duration(float64(median) * math.Exp(st.sigma*r.NormFloat64()))
		if r.Float64() < st.share {
			d = time.Duration(float64(d) * st.factor)
		}
		return d
	}
}

// StragglersSettings are the load of the stragglers drill, in the -json
// output.
type StragglersSettings struct {
	Callers    int     `json:"callers"`
	DurationMS float64 `json:"duration_ms"`
	MedianMS   float64 `json:"median_ms"`
	Sigma      float64 `json:"sigma"`
	SlowShare  float64 `json:"slow_share"`
	SlowFactor float64 `json:"slow_factor"`
}

func (st stragglers) settings() *StragglersSettings {
	return &StragglersSettings{Callers: st.callers, DurationMS: ms(st.duration), MedianMS: ms(st.median),
		Sigma: st.sigma, SlowShare: st.share, SlowFactor: st.factor}
}

// runStragglers plays the stragglers drill against a fresh chaos Server
// with the client cs: a closed loop, each caller waiting for its answer
// before it asks again, as a service's workers do. The score adds the p99.9
// to the usual one; the extra upstream requests are the hedges sent.
// outbound's stack is DefaultConfig's, which hedges after the upstream's
// p95: see docs/hedge.md, "The default".
func runStragglers(ctx context.Context, sc scenario, cs clientSpec, cfg drillConfig) (Result, error) {
	st := *sc.stragglers
	srv, url, c, err := startClosedLoop(sc, cs, cfg, clientEnv{budget: cfg.budget, seed: cfg.seed, tracing: cfg.tracing})
	if err != nil {
		return Result{}, err
	}
	defer srv.Close()
	end := time.Now().Add(cfg.timescale.d(st.duration))
	calls := playClosedLoop(ctx, cfg, sc, cs, c, url, st.callers, end, st.deadline)
	c.close()
	srv.Close() // waits for the handlers, so every request is recorded
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	var all []callResult
	for _, cc := range calls {
		all = append(all, cc...)
	}
	return score(cs.name, all, []*chaos.Server{srv}, cfg.budget), nil
}

// printStragglers writes the table of the stragglers drill: the latency
// quantiles each client's callers saw and what its hedges cost the upstream.
func printStragglers(w io.Writer, sc ScenarioResult, label map[string]string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "client\tcalls\tsuccess\tp50\tp99\tp99.9\tmax\textra requests\t\n")
	for _, r := range sc.Clients {
		name := label[r.Client]
		fmt.Fprintf(tw, "%s\t%d\t%.1f%%\t%s\t%s\t%s\t%s\t%.1f%%\t\n", name, r.Calls,
			100*r.SuccessRate, fmtMS(r.P50MS), fmtMS(r.P99MS), fmtMS(r.P999MS), fmtMS(r.MaxMS),
			100*(r.RequestsPerCall-1))
	}
	tw.Flush()
}

// stragglersScenario is the stragglers drill with the load st.
func stragglersScenario(st stragglers) scenario {
	return scenario{
		name: "stragglers",
		desc: fmt.Sprintf("%d callers, call after call for %v; latency lognormal around %v, %.0f %% of responses %g× slower",
			st.callers, st.duration, st.median, 100*st.share, st.factor),
		hosts: 1, method: "GET", stragglers: &st,
		faults: func(_ int, s scale) []chaos.Fault { return []chaos.Fault{chaos.LatencyFunc(st.latency(s))} },
	}
}
