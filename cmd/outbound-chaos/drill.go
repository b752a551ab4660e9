package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/outboundhttp/outbound/internal/clock"
	"github.com/outboundhttp/outbound/transport/budget"
	"github.com/outboundhttp/outbound/transport/chaos"
	"github.com/outboundhttp/outbound/transport/circuit"
	"github.com/outboundhttp/outbound/transport/ratelimit"
	"github.com/outboundhttp/outbound/transport/tracing"
)

// abandonFactor × budget is how long the drill waits for one call before it
// gives up on it (a client without a deadline would wait forever on a hang).
const abandonFactor = 2

// overBudgetSlack is how far past the budget a call may end and still count
// as within it: the time to notice the deadline and unwind.
const overBudgetSlack = 100 * time.Millisecond

// drillConfig is what every drill of one run shares.
type drillConfig struct {
	calls       int
	concurrency int
	seed        int64
	budget      time.Duration
	timescale   scale
	tracing     []tracing.Option
	progress    *progress
}

// Result is the scorecard row of one client in one scenario.
type Result struct {
	Client string `json:"client"`
	// Calls is the number of logical calls made; Succeeded those that got a
	// 2xx answer whose body was read to the end.
	Calls       int     `json:"calls"`
	Succeeded   int     `json:"succeeded"`
	SuccessRate float64 `json:"success_rate"`
	// Requests is the number of requests the upstream servers received;
	// RequestsPerCall = Requests / Calls (amplification).
	Requests        int     `json:"upstream_requests"`
	RequestsPerCall float64 `json:"requests_per_call"`
	// Latency of the calls, from the first byte sent to the end of the body
	// (or the error), in milliseconds.
	P50MS float64 `json:"p50_ms"`
	P99MS float64 `json:"p99_ms"`
	// P999MS is the p99.9 (the max for a drill of fewer than 1 000 calls).
	P999MS float64 `json:"p999_ms,omitempty"`
	MaxMS  float64 `json:"max_ms"`
	// OverBudget counts calls that took longer than the budget plus 100 ms;
	// Abandoned those the drill gave up on after abandonFactor × budget
	// (also counted in OverBudget).
	OverBudget int `json:"over_budget"`
	Abandoned  int `json:"abandoned"`
	// PolitenessViolations counts requests that came back to the upstream
	// before the Retry-After it had given the same call elapsed.
	PolitenessViolations int `json:"politeness_violations"`
	// DuplicateDeliveries counts extra deliveries of the same POST (no
	// Idempotency-Key) to the upstream.
	DuplicateDeliveries int `json:"duplicate_post_deliveries"`
	// DuplicateProcessing counts the times the upstream processed a POST
	// again (chaos.DuplicateProcessing): every extra delivery for an upstream
	// that ignores Idempotency-Key, none for a retry that got the stored
	// answer from one that honours it (Replayed counts those).
	DuplicateProcessing int `json:"duplicate_post_processing"`
	Replayed            int `json:"replayed"`
	// FailedCalls = Calls - Succeeded.
	FailedCalls int `json:"failed_calls"`
	// Upstream503s counts the 503 answers the upstream servers recorded
	// (for the overload drill: the requests it shed).
	Upstream503s int `json:"upstream_503s"`
	// GoodputPerSec, for a closed-loop drill (overload), is the number of
	// calls that succeeded and ended within the drill's duration, per second
	// of it; CapacityShare is GoodputPerSec over the upstream's capacity.
	// Calls still in flight at the end are made and counted in Calls,
	// Succeeded and the latencies, but not in the goodput.
	GoodputPerSec float64 `json:"goodput_per_s,omitempty"`
	CapacityShare float64 `json:"goodput_share_of_capacity,omitempty"`
	// Outcomes counts the calls by how they ended ("ok", "status 503",
	// "circuit open", "timeout", ...).
	Outcomes map[string]int `json:"outcomes"`
	// Answers counts the upstream's answers by status or fault ("200",
	// "503", "reset", "hang", "canceled").
	Answers map[string]int `json:"upstream_answers"`
	// latencies are the calls' latencies, sorted, for the -html and -png
	// charts (not in the -json output, which keeps its percentiles).
	latencies []time.Duration
}

// runDrill plays sc against a fresh set of chaos Servers with the client cs
// and returns its scorecard row.
func runDrill(ctx context.Context, sc scenario, cs clientSpec, cfg drillConfig) (Result, error) {
	servers := make([]*chaos.Server, sc.hosts)
	urls := make([]string, sc.hosts)
	defer func() {
		for _, s := range servers {
			if s != nil {
				s.Close()
			}
		}
	}()
	var opts []chaos.Option
	if sc.keys {
		opts = append(opts, chaos.WithIdempotency())
	}
	for h := range servers {
		servers[h] = chaos.NewServer(chaos.Scenario{Name: sc.name, Seed: cfg.seed, Faults: sc.faults(h, cfg.timescale)}, opts...)
		u, err := servers[h].Start()
		if err != nil {
			return Result{}, fmt.Errorf("%s: starting upstream %d: %w", sc.name, h, err)
		}
		urls[h] = u
	}

	c, err := cs.build(clientEnv{budget: cfg.budget, seed: cfg.seed, tracing: cfg.tracing, idempotencyKeys: sc.keys})
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", cs.name, err)
	}
	calls := make([]callResult, cfg.calls)
	abandon := abandonFactor * cfg.budget
	interval := cfg.timescale.d(sc.span) / time.Duration(max(cfg.calls, 1))
	slots := make(chan struct{}, max(cfg.concurrency, 1))
	var wg sync.WaitGroup
	start := time.Now()
	made := 0
issue:
	for k := range calls {
		// Calls arrive evenly over the scenario's span, like requests of
		// users to a service that makes one outbound call each; a call waits
		// for a slot when -concurrency calls are already in flight.
		if err := clock.SleepUntil(ctx, start.Add(time.Duration(k)*interval)); err != nil {
			break
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			break issue
		}
		made++
		cfg.progress.started()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			id := fmt.Sprintf("%s-%s-%04d", sc.name, cs.name, k)
			calls[k] = makeCall(ctx, c, sc.method, urls[k%len(urls)], id, k, abandon)
			cfg.progress.done()
		}()
	}
	wg.Wait()
	c.close()
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	return score(cs.name, calls[:made], servers, cfg.budget), nil
}

// score is the scorecard row of client from its calls and the recordings of
// the upstream servers.
func score(client string, calls []callResult, servers []*chaos.Server, budget time.Duration) Result {
	made := len(calls)
	res := Result{
		Client:   client,
		Calls:    made,
		Outcomes: map[string]int{},
		Answers:  map[string]int{},
	}
	lat := make([]time.Duration, 0, made)
	for _, cr := range calls {
		lat = append(lat, cr.latency)
		res.Outcomes[cr.outcome]++
		if cr.outcome == outcomeOK {
			res.Succeeded++
		}
		if cr.latency > budget+overBudgetSlack {
			res.OverBudget++
		}
		if cr.outcome == outcomeAbandoned {
			res.Abandoned++
		}
	}
	for _, s := range servers {
		rep := chaos.Analyze(s.Records(), made)
		res.Requests += rep.Requests
		res.PolitenessViolations += rep.PolitenessViolations
		res.DuplicateDeliveries += rep.DuplicateDeliveries
		res.DuplicateProcessing += rep.DuplicateProcessing
		res.Replayed += rep.Replayed
		for k, v := range rep.Answers {
			res.Answers[k] += v
		}
	}
	res.FailedCalls = made - res.Succeeded
	res.Upstream503s = res.Answers[strconv.Itoa(http.StatusServiceUnavailable)]
	if made > 0 {
		res.SuccessRate = float64(res.Succeeded) / float64(made)
		res.RequestsPerCall = float64(res.Requests) / float64(made)
	}
	slices.Sort(lat)
	res.P50MS = ms(percentile(lat, 0.50))
	res.P99MS = ms(percentile(lat, 0.99))
	res.P999MS = ms(percentile(lat, 0.999))
	res.MaxMS = ms(percentile(lat, 1))
	res.latencies = lat
	return res
}

// callResult is how one call ended, and when.
type callResult struct {
	latency time.Duration
	end     time.Time
	outcome string
}

const (
	outcomeOK        = "ok"
	outcomeAbandoned = "abandoned"
)

// startClosedLoop starts a closed-loop drill's one upstream, a fresh chaos
// Server playing sc's faults, and builds the client cs with env. The caller
// closes the Server.
func startClosedLoop(sc scenario, cs clientSpec, cfg drillConfig, env clientEnv) (*chaos.Server, string, caller, error) {
	srv := chaos.NewServer(chaos.Scenario{Name: sc.name, Seed: cfg.seed, Faults: sc.faults(0, cfg.timescale)})
	url, err := srv.Start()
	if err != nil {
		return nil, "", caller{}, fmt.Errorf("%s: starting upstream: %w", sc.name, err)
	}
	c, err := cs.build(env)
	if err != nil {
		srv.Close()
		return nil, "", caller{}, fmt.Errorf("%s: %w", cs.name, err)
	}
	return srv, url, c, nil
}

// playClosedLoop runs callers callers against url until end, each waiting
// for its answer before it asks again, as a service's workers do; a call
// still running past deadline is abandoned by its caller and counted as a
// timeout (the caller's own deadline ended it, not the drill). Each caller
// keeps its own calls, so the loop shares nothing but the client and the
// progress counters.
func playClosedLoop(ctx context.Context, cfg drillConfig, sc scenario, cs clientSpec, c caller, url string, callers int, end time.Time, deadline time.Duration) [][]callResult {
	calls := make([][]callResult, callers)
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil && time.Now().Before(end); n++ {
				cfg.progress.started()
				id := fmt.Sprintf("%s-%s-%03d-%05d", sc.name, cs.name, i, n)
				cr := makeCall(ctx, c, sc.method, url, id, n, deadline)
				if cr.outcome == outcomeAbandoned {
					cr.outcome = "timeout"
				}
				calls[i] = append(calls[i], cr)
				cfg.progress.loopDone()
			}
		})
	}
	wg.Wait()
	return calls
}

// makeCall makes call number k with request ID id and classifies its end.
func makeCall(ctx context.Context, c caller, method, base, id string, k int, abandon time.Duration) callResult {
	cctx, cancel := context.WithTimeout(ctx, abandon)
	defer cancel()
	var body io.Reader
	url, route := base+"/v1/orders/"+strconv.Itoa(k), "/v1/orders/{id}"
	if method == http.MethodPost {
		url, route = base+"/v1/orders", "/v1/orders"
		body = bytes.NewReader([]byte(`{"order":` + strconv.Itoa(k) + `}`))
	}
	// The route names the spans (GET /v1/orders/{id}) as a service's
	// router would, without the order number that would make every span
	// name unique (OpenTelemetry HTTP semantic conventions: low cardinality).
	req, err := http.NewRequestWithContext(tracing.WithRoute(cctx, route), method, url, body)
	if err != nil {
		return callResult{outcome: "error"}
	}
	req.Header.Set("X-Request-ID", id)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	t0 := time.Now()
	status, err := c.do(req)
	end := time.Now()
	cr := callResult{latency: end.Sub(t0), end: end, outcome: outcomeOK}
	switch {
	case err == nil:
	case cctx.Err() != nil && ctx.Err() == nil:
		cr.outcome = outcomeAbandoned
	default:
		cr.outcome = classify(status, err)
	}
	return cr
}

// classify names why a call failed, from the most specific cause.
func classify(status int, err error) string {
	var se statusError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return "status " + strconv.Itoa(se.code)
	case errors.Is(err, circuit.ErrOpen):
		return "circuit open"
	case errors.Is(err, ratelimit.ErrLimited):
		return "rate limited"
	case errors.Is(err, budget.ErrExhausted):
		return "budget exhausted"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, errReadTimeout),
		errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection reset"
	case status != 0:
		return "status " + strconv.Itoa(status)
	}
	return "error"
}

// percentile returns the nearest-rank q-quantile of sorted (0 when empty).
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
