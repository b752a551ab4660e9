// Command outbound-chaos drills HTTP client stacks against failing upstreams
// and prints a scorecard: what each client did to its callers (success,
// latency, calls over the time budget) and to the upstream (requests per
// call, requests sent before a Retry-After elapsed, POSTs processed twice).
//
// Every scenario runs against chaos Servers on loopback, started fresh for
// each client, so nothing external is needed and every client meets the same
// seeded faults:
//
//	cd cmd/outbound-chaos                # a module of its own; make demo runs it
//	go run .                             # all scenarios, ~30 s
//	go run . -scenario 429-burst         # one of them
//	go run . -json | jq .                # machine-readable
//	go run . -scenario transient-5xx -trace
//	go run . -scenario overload -overload-callers 400
//
// The overload scenario is a closed loop instead: callers that make call
// after call against an upstream of fixed capacity (workers behind a queue
// that sheds with 503), scored by goodput, failed calls and the upstream's
// 503s. It runs after the other scenarios, one client at a time.
//
// Spans of outbound's stack are exported with OTLP/HTTP when
// OTEL_EXPORTER_OTLP_ENDPOINT is set.
//
// The clients: a bare http.Client with the budget as its Timeout;
// go-retryablehttp with its defaults; the reference article's policy (4
// attempts, exponential backoff from 200 ms to 3 s with additive jitter,
// retry on 429/502/503/504 and network errors, no budget, Retry-After
// ignored); and outbound's standard stack.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "outbound-chaos:", err)
		}
		os.Exit(2)
	}
}

// options are the command-line flags.
type options struct {
	scenario    string
	calls       int
	concurrency int
	seed        int64
	budget      time.Duration
	timescale   float64
	json        bool
	trace       bool
	sequential  bool
	clients     string
	overload    overload
	html, png   string // -html FILE, -png DIR
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("outbound-chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.scenario, "scenario", "all", "scenario to run: all, or a comma-separated list of "+scenarioNames())
	fs.IntVar(&o.calls, "calls", 120, "calls per client per scenario, arriving evenly over the scenario's span")
	fs.IntVar(&o.concurrency, "concurrency", 128, "at most this many calls of one client in flight; later arrivals wait")
	fs.Int64Var(&o.seed, "seed", 1, "seed of the faults (and of the article policy's jitter)")
	fs.DurationVar(&o.budget, "budget", 10*time.Second, "time budget per call: outbound's total budget, the bare client's Timeout, the over-budget threshold; calls are abandoned after twice this")
	fs.Float64Var(&o.timescale, "timescale", 1, "multiplies the scenarios' time windows, latencies and spans (Retry-After stays 1 s)")
	fs.BoolVar(&o.json, "json", false, "print the results as JSON instead of tables")
	fs.BoolVar(&o.trace, "trace", false, "print the span tree of one retried call of outbound's stack")
	fs.BoolVar(&o.sequential, "sequential", false, "run the scenarios one after another instead of side by side")
	fs.StringVar(&o.clients, "clients", "all", "clients to compare: all, or a comma-separated list of bare, retryablehttp, article, outbound")
	fs.StringVar(&o.html, "html", "", "also write the scorecard as one self-contained HTML `file` with a chart per drill")
	fs.StringVar(&o.png, "png", "", "also write one PNG chart per drill into `dir`")
	def := defaultOverload()
	fs.IntVar(&o.overload.workers, "overload-workers", def.workers, "overload: workers of the upstream, each working one request at a time")
	fs.DurationVar(&o.overload.work, "overload-work", def.work, "overload: time a worker takes per request (capacity = workers / work)")
	fs.IntVar(&o.overload.shedAbove, "overload-shed", def.shedAbove, "overload: the upstream answers 503 at once when this many requests are in flight (queued or worked)")
	fs.IntVar(&o.overload.callers, "overload-callers", def.callers, "overload: callers, each making call after call")
	fs.DurationVar(&o.overload.duration, "overload-duration", def.duration, "overload: how long the callers keep calling, per client")
	fs.DurationVar(&o.overload.deadline, "overload-deadline", def.deadline, "overload: deadline of each call (context.WithTimeout)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: outbound-chaos [flags]\n\nRuns failure scenarios against embedded flaky upstreams and prints a scorecard per scenario.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.calls < 1:
		return o, fmt.Errorf("-calls %d: want at least 1", o.calls)
	case o.concurrency < 1:
		return o, fmt.Errorf("-concurrency %d: want at least 1", o.concurrency)
	case o.budget <= 0:
		return o, fmt.Errorf("-budget %v: want a positive duration", o.budget)
	case !(o.timescale > 0):
		return o, fmt.Errorf("-timescale %v: want a positive factor", o.timescale)
	}
	return o, o.overload.validate()
}

// Report is the -json output.
type Report struct {
	Seed        int64            `json:"seed"`
	Calls       int              `json:"calls"`
	Concurrency int              `json:"concurrency"`
	BudgetMS    float64          `json:"budget_ms"`
	Timescale   float64          `json:"timescale"`
	ElapsedMS   float64          `json:"elapsed_ms"`
	Scenarios   []ScenarioResult `json:"scenarios"`
}

// ScenarioResult is one scenario's scorecard.
type ScenarioResult struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Hosts       int    `json:"hosts"`
	Method      string `json:"method"`
	// Overload is set for the closed-loop overload drill.
	Overload *OverloadSettings `json:"overload,omitempty"`
	// Stragglers is set for the closed-loop stragglers drill.
	Stragglers *StragglersSettings `json:"stragglers,omitempty"`
	// IdempotencyKeys is set when the upstream honours Idempotency-Key and
	// outbound's IdempotencyKeys is on.
	IdempotencyKeys bool     `json:"idempotency_keys,omitempty"`
	Clients         []Result `json:"clients"`
}

// OverloadSettings are the upstream and the callers of the overload drill.
type OverloadSettings struct {
	Workers        int     `json:"workers"`
	WorkMS         float64 `json:"work_ms"`
	ShedAbove      int     `json:"shed_above"`
	CapacityPerSec float64 `json:"capacity_per_s"`
	Callers        int     `json:"callers"`
	DurationMS     float64 `json:"duration_ms"`
	DeadlineMS     float64 `json:"deadline_ms"`
}

// run is the program: it parses args, runs the drills and writes the
// scorecard to stdout and progress to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	scs, err := selectScenarios(o.scenario, o.overload)
	if err != nil {
		return err
	}
	cls, err := selectClients(o.clients)
	if err != nil {
		return err
	}
	// An invalid stack configuration (a budget too short for the backoff
	// waits of four attempts) is reported before any drill starts.
	hc, err := outboundClient(o.budget, nil, false)
	if err != nil {
		return err
	}
	hc.CloseIdleConnections()
	tel, err := setupTelemetry(ctx, o.trace)
	if err != nil {
		return err
	}

	var open, closed []int // indexes into scs of the open- and closed-loop drills
	for i, sc := range scs {
		if sc.closed != nil || sc.stragglers != nil {
			closed = append(closed, i)
		} else {
			open = append(open, i)
		}
	}
	prog := newProgress(stderr, len(open)*len(cls)*o.calls)
	go prog.run()
	start := time.Now()
	cfg := drillConfig{
		calls: o.calls, concurrency: o.concurrency, seed: o.seed, budget: o.budget,
		timescale: scale(o.timescale), tracing: tel.opts, progress: prog,
	}
	rep := Report{Seed: o.seed, Calls: o.calls, Concurrency: o.concurrency,
		BudgetMS: ms(o.budget), Timescale: o.timescale, Scenarios: make([]ScenarioResult, len(scs))}
	errs := make([]error, len(scs))
	for i, sc := range scs {
		rep.Scenarios[i] = ScenarioResult{Name: sc.name, Description: sc.desc, Hosts: sc.hosts,
			Method: sc.method, IdempotencyKeys: sc.keys, Clients: make([]Result, len(cls))}
		if ov := sc.closed; ov != nil {
			rep.Scenarios[i].Overload = &OverloadSettings{Workers: ov.workers, WorkMS: ms(ov.work),
				ShedAbove: ov.shedAbove, CapacityPerSec: ov.capacity(), Callers: ov.callers,
				DurationMS: ms(ov.duration), DeadlineMS: ms(ov.deadline)}
		}
		if st := sc.stragglers; st != nil {
			rep.Scenarios[i].Stragglers = st.settings()
		}
	}
	var wg sync.WaitGroup
	for _, i := range open {
		sc := scs[i]
		one := func() {
			// The clients of a scenario run side by side, each against its
			// own servers, so they see the same faults at the same times.
			var cwg sync.WaitGroup
			cerrs := make([]error, len(cls))
			for j, cs := range cls {
				cwg.Go(func() {
					rep.Scenarios[i].Clients[j], cerrs[j] = runDrill(ctx, sc, cs, cfg)
				})
			}
			cwg.Wait()
			errs[i] = errors.Join(cerrs...)
		}
		if o.sequential {
			one()
		} else {
			wg.Go(one)
		}
	}
	wg.Wait()
	// The closed-loop drills run after the others, and their clients one
	// after another. Each keeps the machine's CPU busy by itself (200 callers
	// at about 1 600 calls/s when a client serves the upstream's capacity, and
	// many more when it fails calls fast), and this machine may have two
	// cores: side by side, the clients and scenarios would take CPU from one
	// another, and goodput and latencies would measure the machine, not the
	// client.
	for _, i := range closed {
		var cerrs []error
		for j, cs := range cls {
			if ctx.Err() != nil {
				break
			}
			var err error
			if scs[i].stragglers != nil {
				rep.Scenarios[i].Clients[j], err = runStragglers(ctx, scs[i], cs, cfg)
			} else {
				rep.Scenarios[i].Clients[j], err = runClosedLoop(ctx, scs[i], cs, cfg)
			}
			cerrs = append(cerrs, err)
		}
		errs[i] = errors.Join(append(cerrs, ctx.Err())...)
	}
	prog.finish()
	rep.ElapsedMS = ms(time.Since(start))
	if err := errors.Join(errs...); err != nil {
		tel.close()
		return err
	}

	if err := writeReports(o, rep); err != nil {
		tel.close()
		return err
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printScorecard(stdout, rep, cls)
	}
	if o.trace {
		out := stdout
		if o.json {
			out = stderr // keep stdout valid JSON
		}
		prefixes := make([]string, len(scs))
		for i, sc := range scs {
			prefixes[i] = sc.name + "-outbound-"
		}
		spans, id := retriedTrace(tel.recorder.Ended(), prefixes)
		if spans == nil {
			fmt.Fprintln(out, "\n-trace: no call of outbound's stack was retried in these scenarios.")
		} else {
			fmt.Fprintf(out, "\nSpan tree of one retried call of outbound's stack (request ID %s):\n\n", id)
			printTree(out, spans)
		}
	}
	return tel.close()
}

func selectClients(spec string) ([]clientSpec, error) {
	all := allClients()
	if spec == "" || spec == "all" {
		return all, nil
	}
	var out []clientSpec
	for _, name := range strings.Split(spec, ",") {
		name = strings.TrimSpace(name)
		i := -1
		for j, c := range all {
			if c.name == name {
				i = j
			}
		}
		if i < 0 {
			return nil, fmt.Errorf("unknown client %q (want all or bare, retryablehttp, article, outbound)", name)
		}
		out = append(out, all[i])
	}
	return out, nil
}

// printScorecard writes one table per scenario.
func printScorecard(w io.Writer, rep Report, cls []clientSpec) {
	label := map[string]string{}
	for _, c := range cls {
		label[c.name] = c.label
	}
	budget := time.Duration(rep.BudgetMS * float64(time.Millisecond))
	openLoop := false
	for _, sc := range rep.Scenarios {
		openLoop = openLoop || (sc.Overload == nil && sc.Stragglers == nil)
	}
	if openLoop {
		fmt.Fprintf(w, "outbound-chaos: %d calls per client per scenario, seed %d, budget %v, time scale %g (%.1f s)\n",
			rep.Calls, rep.Seed, budget, rep.Timescale, rep.ElapsedMS/1000)
	} else {
		fmt.Fprintf(w, "outbound-chaos: seed %d, budget %v (%.1f s)\n", rep.Seed, budget, rep.ElapsedMS/1000)
	}
	for _, sc := range rep.Scenarios {
		fmt.Fprintf(w, "\n%s: %s\n", sc.Name, sc.Description)
		if sc.Overload != nil {
			printOverload(w, sc, label)
			continue
		}
		if sc.Stragglers != nil {
			printStragglers(w, sc, label)
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "client\tsuccess\treq/call\tp50\tp99\tmax\tover %v\timpolite\tdup POST\t\n", budget)
		var notes []string
		for _, r := range sc.Clients {
			name := label[r.Client]
			if sc.IdempotencyKeys && r.Client == "outbound" {
				name += " (IdempotencyKeys)"
			}
			fmt.Fprintf(tw, "%s\t%.1f%%\t%.2f\t%s\t%s\t%s\t%d\t%d\t%d\t\n", name,
				100*r.SuccessRate, r.RequestsPerCall, fmtMS(r.P50MS), fmtMS(r.P99MS), fmtMS(r.MaxMS),
				r.OverBudget, r.PolitenessViolations, r.DuplicateProcessing)
			if r.Abandoned > 0 {
				notes = append(notes, fmt.Sprintf("%s: %d calls still running after %v were abandoned",
					label[r.Client], r.Abandoned, abandonFactor*budget))
			}
		}
		tw.Flush()
		for _, n := range notes {
			fmt.Fprintf(w, "  (%s)\n", n)
		}
	}
	fmt.Fprintln(w, "\nColumns are explained in docs/chaos.md, section Scorecard.")
}

// printOverload writes the table of a closed-loop drill: what each client
// made of the upstream's capacity, for its callers and for the upstream.
func printOverload(w io.Writer, sc ScenarioResult, label map[string]string) {
	ov := sc.Overload
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "client\tgoodput/s\tof %.0f/s\tcalls\tfailed\tupstream 503s\treq/call\tp50\tp99\tmax\t\n", ov.CapacityPerSec)
	for _, r := range sc.Clients {
		failed := 0.0
		if r.Calls > 0 {
			failed = 100 * float64(r.FailedCalls) / float64(r.Calls)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f%%\t%d\t%d (%.1f%%)\t%d\t%.2f\t%s\t%s\t%s\t\n", label[r.Client],
			r.GoodputPerSec, 100*r.CapacityShare, r.Calls, r.FailedCalls, failed, r.Upstream503s,
			r.RequestsPerCall, fmtMS(r.P50MS), fmtMS(r.P99MS), fmtMS(r.MaxMS))
	}
	tw.Flush()
}

// fmtMS formats milliseconds compactly: 0.4ms, 12ms, 1.25s.
func fmtMS(v float64) string {
	switch {
	case v < 10:
		return fmt.Sprintf("%.1fms", v)
	case v < 1000:
		return fmt.Sprintf("%.0fms", v)
	}
	return fmt.Sprintf("%.2fs", v/1000)
}
