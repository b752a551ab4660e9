package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/outboundhttp/outbound/transport/circuit"
	"github.com/outboundhttp/outbound/transport/retry"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// runJSON runs the program with args plus -json and decodes its report.
func runJSON(t *testing.T, args ...string) Report {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), append(args, "-json"), &stdout, &stderr); err != nil {
		t.Fatalf("run %v: %v\nstderr:\n%s", args, err, stderr.String())
	}
	var rep Report
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("run %v: -json output does not parse: %v\n%s", args, err, stdout.String())
	}
	if dec.More() {
		t.Fatalf("run %v: -json output has more than one value", args)
	}
	return rep
}

// row returns the result of client in scenario, failing the test if absent.
func row(t *testing.T, rep Report, scenario, client string) Result {
	t.Helper()
	for _, sc := range rep.Scenarios {
		if sc.Name != scenario {
			continue
		}
		for _, r := range sc.Clients {
			if r.Client == client {
				t.Logf("%-14s %-13s success %5.1f%%  req/call %.2f  p50 %6.0fms  max %6.0fms  over %d  impolite %d  dup %d  outcomes %v  answers %v",
					scenario, client, 100*r.SuccessRate, r.RequestsPerCall, r.P50MS, r.MaxMS, r.OverBudget,
					r.PolitenessViolations, r.DuplicateDeliveries, r.Outcomes, r.Answers)
				return r
			}
		}
	}
	t.Fatalf("no result for %s / %s", scenario, client)
	return Result{}
}

// TestScorecardClaims runs every scenario at a small scale and checks what
// docs/chaos.md claims for outbound's stack, and that each scenario really
// produced the failure it is about (so the claims cannot hold vacuously).
// Each run compares outbound with only the client its claim is about, and
// the runs go one after another, at the scenarios' own time scale: under the
// race detector on a busy machine, faster arrivals queue up behind the CPU
// and every latency becomes scheduling noise.
func TestScorecardClaims(t *testing.T) {
	t.Run("transient-5xx", func(t *testing.T) {
		rep := runJSON(t, "-scenario", "transient-5xx", "-calls", "150", "-clients", "outbound")
		ob := row(t, rep, "transient-5xx", "outbound")
		if ob.Answers["503"] < 5 {
			t.Errorf("outbound met %d 503s; the scenario should answer about 10%% of attempts with 503", ob.Answers["503"])
		}
		if ob.SuccessRate < 0.99 {
			t.Errorf("outbound: success %.1f%% under 10%% transient 503s; want at least 99%%", 100*ob.SuccessRate)
		}
	})

	t.Run("burst+outages+resets", func(t *testing.T) {
		// A budget of 5 s leaves the article's policy the 4.4 s its four
		// attempts may take, so its amplification is not cut by the drill.
		// The scenarios' own time scale (a burst from 1 s to 3 s) leaves room
		// for a loaded machine to deliver calls late and still hit it.
		rep := runJSON(t, "-scenario", "429-burst,full-outage,partial-outage,resets", "-calls", "60",
			"-budget", "5s", "-clients", "article,outbound")

		if a := row(t, rep, "429-burst", "article"); a.PolitenessViolations == 0 {
			t.Errorf("article policy: no politeness violations; the burst should have caught its early retries")
		}
		ob := row(t, rep, "429-burst", "outbound")
		if ob.Answers["429"] == 0 {
			t.Errorf("outbound never received a 429; the scenario did not run")
		}
		if ob.PolitenessViolations != 0 {
			t.Errorf("outbound: %d politeness violations under the 429 burst; want 0", ob.PolitenessViolations)
		}

		if a := row(t, rep, "full-outage", "article"); a.RequestsPerCall <= 2.5 {
			t.Errorf("article policy: %.2f upstream requests per call under a full outage; want about 4 (> 2.5)", a.RequestsPerCall)
		}
		ob = row(t, rep, "full-outage", "outbound")
		if ob.RequestsPerCall > 1.3 {
			t.Errorf("outbound: %.2f upstream requests per call under a full outage; want at most 1.3", ob.RequestsPerCall)
		}
		if ob.SuccessRate != 0 {
			t.Errorf("outbound: success %.1f%% against an upstream that only answers 503", 100*ob.SuccessRate)
		}

		a, ob := row(t, rep, "partial-outage", "article"), row(t, rep, "partial-outage", "outbound")
		if ob.RequestsPerCall >= a.RequestsPerCall {
			t.Errorf("partial outage: outbound sent %.2f requests per call, the article policy %.2f; want fewer",
				ob.RequestsPerCall, a.RequestsPerCall)
		}

		if a := row(t, rep, "resets", "article"); a.DuplicateDeliveries == 0 {
			t.Errorf("article policy: no duplicate POST deliveries; the resets should have made it resend some")
		}
		ob = row(t, rep, "resets", "outbound")
		if ob.Answers["reset"] == 0 {
			t.Errorf("outbound met no reset; the scenario did not run")
		}
		if ob.DuplicateDeliveries != 0 || ob.DuplicateProcessing != 0 {
			t.Errorf("outbound: %d duplicate POST deliveries (%d processed) under connection resets; want 0",
				ob.DuplicateDeliveries, ob.DuplicateProcessing)
		}
	})

	t.Run("recovery+keys", func(t *testing.T) {
		rep := runJSON(t, "-scenario", "outage-recovery,resets-keyed", "-calls", "120",
			"-clients", "retryablehttp,outbound")

		peer, ob := row(t, rep, "outage-recovery", "retryablehttp"), row(t, rep, "outage-recovery", "outbound")
		if ob.Answers["503"] == 0 || ob.Answers["200"] == 0 {
			t.Errorf("outbound met answers %v; the outage and the recovery should both show", ob.Answers)
		}
		// With full jitter, one call's four attempts could all fail before
		// the breaker had seen 20 failures, and the call ended with its 503
		// (one call in about 40 % of runs, two in 5 %). Equal jitter keeps
		// 0.7 s between a call's first and fourth attempt, longer than the
		// breaker takes to open here, and every later call waits for the
		// probe. One call may still be short on a machine slow enough to
		// stretch the breaker's 20 failures past that.
		if ob.Succeeded < peer.Succeeded-1 {
			t.Errorf("outage recovery: outbound success %.1f%% < go-retryablehttp's %.1f%%", 100*ob.SuccessRate, 100*peer.SuccessRate)
		}
		if ob.RequestsPerCall > 1.25 || ob.OverBudget != 0 {
			t.Errorf("outage recovery: outbound %.2f requests per call, %d calls over budget; want at most 1.25 and none",
				ob.RequestsPerCall, ob.OverBudget)
		}

		peer, ob = row(t, rep, "resets-keyed", "retryablehttp"), row(t, rep, "resets-keyed", "outbound")
		if !rep.Scenarios[1].IdempotencyKeys {
			t.Error("resets-keyed: the report does not say that keys were on")
		}
		if ob.Answers["reset"] == 0 || ob.Replayed == 0 {
			t.Errorf("outbound met %d resets and %d replays; the scenario did not run", ob.Answers["reset"], ob.Replayed)
		}
		if ob.DuplicateProcessing != 0 {
			t.Errorf("outbound with IdempotencyKeys: %d POSTs processed twice by a server that honours keys; want 0", ob.DuplicateProcessing)
		}
		if ob.SuccessRate < 0.98 {
			t.Errorf("outbound with IdempotencyKeys: success %.1f%% under 20%% resets; want all but a call or two", 100*ob.SuccessRate)
		}
		if peer.DuplicateProcessing == 0 {
			t.Errorf("go-retryablehttp sends no keys: its resent POSTs should have been processed twice")
		}
	})

	t.Run("hangs+stalls", func(t *testing.T) {
		const budget = 2 * time.Second // the shortest NewClient accepts with 4 attempts is 1.4 s
		lag := startLagMonitor()
		rep := runJSON(t, "-scenario", "latency,stalls", "-calls", "120",
			"-budget", budget.String(), "-clients", "bare,outbound")
		// On a machine too loaded to run this process on time, a call ends
		// late however promptly its deadline fires. Allow what the bare
		// client, whose http.Client.Timeout is the budget, overran by in the
		// same run, or the worst timer lateness seen, whichever is more, up to
		// half the budget: a stack that does not enforce the budget (its hung
		// calls run to the drill's 2 × budget) still fails.
		late := lag()
		for _, sc := range []string{"latency", "stalls"} {
			bare := row(t, rep, sc, "bare")
			late = max(late, time.Duration(bare.MaxMS*float64(time.Millisecond))-budget)
		}
		late = min(late, budget/2)
		limit := float64((budget + overBudgetSlack + late).Milliseconds())
		for _, sc := range []string{"latency", "stalls"} {
			ob := row(t, rep, sc, "outbound")
			if sc == "latency" && ob.Answers["hang"] == 0 {
				t.Errorf("outbound met no hang; the scenario did not run")
			}
			if ob.MaxMS > limit {
				t.Errorf("%s: outbound: slowest call %.0f ms (%d over %v + 100 ms); want none over %.0f ms (lateness allowed %v)",
					sc, ob.MaxMS, ob.OverBudget, budget, limit, late)
			}
		}
	})
}

// startLagMonitor measures how late this process's timers fire (how starved
// it is of CPU) until the returned function is called, which returns the
// worst lateness seen.
func startLagMonitor() func() time.Duration {
	stop, done := make(chan struct{}), make(chan time.Duration)
	go func() {
		var worst time.Duration
		for {
			t0 := time.Now()
			select {
			case <-stop:
				done <- worst
				return
			case <-time.After(10 * time.Millisecond):
				worst = max(worst, time.Since(t0)-10*time.Millisecond)
			}
		}
	}()
	return func() time.Duration {
		close(stop)
		return <-done
	}
}

// TestTextScorecard checks the default output: one table per scenario with
// every client and every column.
func TestTextScorecard(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-scenario", "transient-5xx,resets", "-calls", "20",
		"-timescale", "0.25", "-budget", "2s"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"transient-5xx: 10 % of attempts answered 503",
		"resets: POST without Idempotency-Key",
		"success", "req/call", "p50", "p99", "max", "over 2s", "impolite", "dup POST",
		"bare http.Client", "go-retryablehttp", "article policy", "outbound",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scorecard lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "bare http.Client") != 2 {
		t.Errorf("want one row per scenario for each client:\n%s", out)
	}
}

// TestTrace checks that -trace prints the span tree of a retried call: one
// logical span, two attempt spans, the second with resend_count 1, and the
// retry event between them.
func TestTrace(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-scenario", "transient-5xx", "-calls", "60",
		"-timescale", "0.05", "-clients", "outbound", "-trace"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	out := stdout.String()
	_, tree, ok := strings.Cut(out, "Span tree of one retried call")
	if !ok {
		t.Fatalf("no span tree in the output:\n%s", out)
	}
	for _, want := range []string{"[internal]", "[client]", "http.response.status_code=503",
		"http.request.resend_count=1", `event "outbound.retry"`, "outbound.request.id=transient-5xx-outbound-"} {
		if !strings.Contains(tree, want) {
			t.Errorf("span tree lacks %q:\n%s", want, tree)
		}
	}
	if n := strings.Count(tree, "[client]"); n < 2 {
		t.Errorf("span tree has %d attempt spans; want at least 2:\n%s", n, tree)
	}
}

// TestJSONShape checks the -json output against a schema-free decode, so a
// consumer that does not share this package's types can read it.
func TestJSONShape(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-scenario", "full-outage", "-calls", "10", "-timescale", "0.05",
		"-budget", "2s", "-clients", "bare,outbound", "-json", "-trace"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	var v struct {
		Seed      *int64 `json:"seed"`
		Scenarios []struct {
			Name    string           `json:"name"`
			Clients []map[string]any `json:"clients"`
		} `json:"scenarios"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &v); err != nil {
		t.Fatalf("-json -trace output is not JSON (the tree must go to stderr): %v\n%s", err, stdout.String())
	}
	if v.Seed == nil || len(v.Scenarios) != 1 || v.Scenarios[0].Name != "full-outage" || len(v.Scenarios[0].Clients) != 2 {
		t.Fatalf("unexpected shape: %s", stdout.String())
	}
	for _, c := range v.Scenarios[0].Clients {
		for _, k := range []string{"client", "calls", "success_rate", "requests_per_call", "p50_ms", "p99_ms",
			"max_ms", "over_budget", "politeness_violations", "duplicate_post_deliveries", "outcomes"} {
			if _, ok := c[k]; !ok {
				t.Errorf("client row lacks %q: %v", k, c)
			}
		}
	}
}

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-scenario", "nope"},
		{"-clients", "curl"},
		{"-calls", "0"},
		{"-concurrency", "0"},
		{"-budget", "0s"},
		{"-budget", "1s"}, // shorter than outbound's backoff waits: NewClient refuses it
		{"-timescale", "0"},
		{"extra"},
	} {
		err := run(context.Background(), args, io.Discard, io.Discard)
		if err == nil {
			t.Errorf("run %v: no error", args)
		}
	}
	if err := run(context.Background(), []string{"-h"}, io.Discard, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("run -h: %v; want flag.ErrHelp", err)
	}
}

// TestArticleWait checks the transcription of tenacity's
// wait_exponential_jitter(initial=0.2, max=3): additive jitter of up to 1 s
// on top of 0.2·2^(n-1), capped at 3 s.
func TestArticleWait(t *testing.T) {
	for _, tc := range []struct {
		n      int
		u      float64
		lo, hi time.Duration
	}{
		{1, 0, 200 * time.Millisecond, 200 * time.Millisecond},
		{1, 0.999, 1199 * time.Millisecond, 1200 * time.Millisecond},
		{2, 0.5, 900 * time.Millisecond, 900 * time.Millisecond},
		{3, 0, 800 * time.Millisecond, 800 * time.Millisecond},
		{5, 0, 3 * time.Second, 3 * time.Second}, // 3.2 s capped
		{4, 0.9, 2500 * time.Millisecond, 2500 * time.Millisecond},
		{5, 0.5, 3 * time.Second, 3 * time.Second},
	} {
		if got := articleWait(tc.n, tc.u); got < tc.lo || got > tc.hi {
			t.Errorf("articleWait(%d, %v) = %v; want in [%v, %v]", tc.n, tc.u, got, tc.lo, tc.hi)
		}
	}
}

func TestArticleTransient(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{statusError{429}, true}, {statusError{502}, true}, {statusError{503}, true}, {statusError{504}, true},
		{statusError{500}, false}, {statusError{404}, false},
		{fmt.Errorf("reading body: %w", errReadTimeout), true},
		{errors.New("connection reset by peer"), true},
	} {
		if got := articleTransient(0, tc.err); got != tc.want {
			t.Errorf("articleTransient(%v) = %v; want %v", tc.err, got, tc.want)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{statusError{503}, "status 503"},
		{&circuit.OpenError{}, "circuit open"},
		{&retry.Error{Attempts: 1, Err: context.DeadlineExceeded}, "timeout"},
		{fmt.Errorf("reading body: %w", io.ErrUnexpectedEOF), "connection reset"},
		{errors.New("boom"), "error"},
	} {
		if got := classify(0, tc.err); got != tc.want {
			t.Errorf("classify(%v) = %q; want %q", tc.err, got, tc.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50}, {0.99, 99}, {1, 100}, {0, 1}} {
		if got := percentile(d, tc.q); got != tc.want {
			t.Errorf("percentile(1..100, %v) = %v; want %v", tc.q, got, tc.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile(nil) = %v; want 0", got)
	}
}

// overloadArgs are the flags of a small overload drill: 8 callers against an
// upstream of 4 workers × 5 ms (800 calls/s) that sheds at 6 in flight, for
// 300 ms per client.
var overloadArgs = []string{"-scenario", "overload", "-overload-workers", "4", "-overload-work", "5ms",
	"-overload-shed", "6", "-overload-callers", "8", "-overload-duration", "300ms", "-overload-deadline", "1s"}

// TestOverload runs the closed-loop drill at a small size and checks that
// its numbers agree with one another and with the upstream's recording. It
// checks no client's figures: outbound's stack is measured, not asserted,
// here (see bench/overload_test.go for the comparison with the peers).
func TestOverload(t *testing.T) {
	rep := runJSON(t, overloadArgs...)
	if len(rep.Scenarios) != 1 || rep.Scenarios[0].Name != "overload" {
		t.Fatalf("got scenarios %+v; want overload alone", rep.Scenarios)
	}
	sc := rep.Scenarios[0]
	want := OverloadSettings{Workers: 4, WorkMS: 5, ShedAbove: 6, CapacityPerSec: 800, Callers: 8, DurationMS: 300, DeadlineMS: 1000}
	if sc.Overload == nil || *sc.Overload != want {
		t.Fatalf("got settings %+v; want %+v", sc.Overload, want)
	}
	if len(sc.Clients) != 4 {
		t.Fatalf("got %d clients; want 4", len(sc.Clients))
	}
	const duration = 0.3 // seconds
	for _, r := range sc.Clients {
		t.Logf("%-13s goodput %4.0f/s (%.0f%%)  calls %4d  failed %3d  503s %3d  req/call %.2f  p50 %5.1fms  p99 %6.1fms  outcomes %v",
			r.Client, r.GoodputPerSec, 100*r.CapacityShare, r.Calls, r.FailedCalls, r.Upstream503s,
			r.RequestsPerCall, r.P50MS, r.P99MS, r.Outcomes)
		if r.Calls == 0 || r.Calls != r.Succeeded+r.FailedCalls {
			t.Errorf("%s: got %d calls, %d succeeded, %d failed; want calls = succeeded + failed > 0",
				r.Client, r.Calls, r.Succeeded, r.FailedCalls)
		}
		// Goodput counts the successes that ended within the duration; each
		// caller may have had one more in flight at the end.
		good := r.GoodputPerSec * duration
		if float64(r.Succeeded) < good-0.5 || float64(r.Succeeded) > good+8 {
			t.Errorf("%s: got goodput %.1f/s × %vs = %.0f, %d successes; want successes within [goodput × duration, + 8 callers]",
				r.Client, r.GoodputPerSec, duration, good, r.Succeeded)
		}
		// The model completes at most a job per worker per work time, plus
		// the first one of each worker.
		if most := 800 + 4/duration; r.GoodputPerSec > most {
			t.Errorf("%s: got goodput %.0f/s; want at most the capacity, %.0f/s", r.Client, r.GoodputPerSec, most)
		}
		if got, want := r.CapacityShare, r.GoodputPerSec/800; math.Abs(got-want) > 1e-9 {
			t.Errorf("%s: got share of capacity %v; want %v", r.Client, got, want)
		}
		if r.Upstream503s != r.Answers["503"] || r.Upstream503s > r.Requests {
			t.Errorf("%s: got %d upstream 503s of %d requests, answers %v; want the recorded 503s",
				r.Client, r.Upstream503s, r.Requests, r.Answers)
		}
		if r.Abandoned != 0 || r.Outcomes[outcomeAbandoned] != 0 {
			t.Errorf("%s: got %d abandoned; want calls ended by their deadline counted as timeouts", r.Client, r.Abandoned)
		}
	}
	// The bare client makes one request per call and fails every shed one:
	// with 8 callers and 6 places in flight, the drill did overload it.
	bare := row(t, rep, "overload", "bare")
	if bare.Upstream503s == 0 || bare.FailedCalls != bare.Upstream503s || bare.Requests != bare.Calls {
		t.Errorf("bare: got %d calls, %d requests, %d failed, %d upstream 503s; want one request per call, some shed, each a failed call",
			bare.Calls, bare.Requests, bare.FailedCalls, bare.Upstream503s)
	}
}

// TestOverloadText checks the overload table, and that the other drills keep
// theirs in the same run.
func TestOverloadText(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := append([]string{"-scenario", "transient-5xx,overload", "-calls", "10", "-timescale", "0.25",
		"-budget", "2s", "-clients", "bare,outbound"}, overloadArgs[2:]...) // all but its -scenario
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	out := stdout.String()
	_, ovTable, ok := strings.Cut(out, "\noverload: 8 callers, call after call for 300ms, 1s deadline each; upstream of 4 workers × 5ms (800 calls/s), 503 at once when 6 are in flight\n")
	if !ok {
		t.Fatalf("no overload table:\n%s", out)
	}
	for _, want := range []string{"goodput/s", "of 800/s", "calls", "failed", "upstream 503s", "req/call", "p50", "p99", "max",
		"bare http.Client", "outbound"} {
		if !strings.Contains(ovTable, want) {
			t.Errorf("overload table lacks %q:\n%s", want, ovTable)
		}
	}
	openTable, _, _ := strings.Cut(out, "\noverload:")
	for _, want := range []string{"transient-5xx: 10 % of attempts answered 503", "success", "req/call", "over 2s", "impolite", "dup POST"} {
		if !strings.Contains(openTable, want) {
			t.Errorf("transient-5xx table lacks %q:\n%s", want, openTable)
		}
	}
	if strings.Contains(openTable, "goodput") {
		t.Errorf("the open-loop table has overload columns:\n%s", openTable)
	}
}

func TestOverloadFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := o.overload, defaultOverload(); got != want {
		t.Errorf("got defaults %+v; want %+v", got, want)
	}
	if got, want := defaultOverload().capacity(), 1600.0; got != want {
		t.Errorf("got default capacity %v/s; want %v/s", got, want)
	}
	o, err = parseFlags(overloadArgs, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := overload{workers: 4, work: 5 * time.Millisecond, shedAbove: 6, callers: 8,
		duration: 300 * time.Millisecond, deadline: time.Second}
	if o.overload != want {
		t.Errorf("got %+v; want %+v", o.overload, want)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-overload-workers", "0"}, "-overload-workers 0: want at least 1"},
		{[]string{"-overload-work", "0s"}, "-overload-work 0s: want a positive duration"},
		{[]string{"-overload-work", "-1ms"}, "-overload-work -1ms: want a positive duration"},
		{[]string{"-overload-shed", "15"}, "-overload-shed 15: want at least -overload-workers (16)"},
		{[]string{"-overload-workers", "8", "-overload-shed", "4"}, "-overload-shed 4: want at least -overload-workers (8)"},
		{[]string{"-overload-callers", "0"}, "-overload-callers 0: want at least 1"},
		{[]string{"-overload-duration", "0s"}, "-overload-duration 0s: want a positive duration"},
		{[]string{"-overload-deadline", "0s"}, "-overload-deadline 0s: want a positive duration"},
		{[]string{"-overload-workers", "x"}, `invalid value "x" for flag -overload-workers`},
	} {
		err := run(context.Background(), tc.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run %v: got %v; want an error with %q", tc.args, err, tc.want)
		}
	}
}
