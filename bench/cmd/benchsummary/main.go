// Command benchsummary reads the output of one `make bench` run of the bench
// module (`go test -bench` lines, and the paired loopback rounds that
// TestLoopbackRatio logs) and prints every performance target of issue 18 as
// a ratio of rows measured in that run, with its verdict:
//
//	go run ./cmd/benchsummary results.txt...
//
// Times are medians over the run's passes (CPU time per call where the
// benchmark reports cpu-ns/op); "adds" is a row minus the bare in-memory
// base row. With BENCH_ENFORCE_TARGETS=1 it exits with status 1
// when a target is missed.
package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

type sample struct{ ns, cpu, allocs []float64 }

// procs is the -N suffix go test gives a benchmark run with GOMAXPROCS N > 1.
var procs = regexp.MustCompile(`-(\d+)$`)

// loopbackLine is what TestLoopbackRatio logs for each client and caller count.
var loopbackLine = regexp.MustCompile(`loopback +(\d+) callers: (\S+) throughput / bare = ([0-9.]+) .*quartiles ([0-9.]+)-([0-9.]+)`)

type results struct {
	bench    map[string]*sample // name without the -N suffix
	parallel map[string]*sample // BenchmarkParallel rows by name and GOMAXPROCS ("default@2")
	loopback map[string][3]float64
}

func read(paths []string) (*results, error) {
	r := &results{bench: map[string]*sample{}, parallel: map[string]*sample{}, loopback: map[string][3]float64{}}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			if m := loopbackLine.FindStringSubmatch(line); m != nil {
				med, _ := strconv.ParseFloat(m[3], 64)
				q1, _ := strconv.ParseFloat(m[4], 64)
				q3, _ := strconv.ParseFloat(m[5], 64)
				r.loopback[m[2]+"@"+m[1]] = [3]float64{med, q1, q3}
				continue
			}
			fields := strings.Fields(line)
			if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
				continue
			}
			name, n := fields[0], "1"
			if m := procs.FindStringSubmatch(name); m != nil {
				name, n = strings.TrimSuffix(name, m[0]), m[1]
			}
			dst, key := r.bench, name
			if strings.HasPrefix(name, "BenchmarkParallel/") {
				dst, key = r.parallel, strings.TrimPrefix(name, "BenchmarkParallel/")+"@"+n
			}
			s := dst[key]
			if s == nil {
				s = &sample{}
				dst[key] = s
			}
			for i := 2; i+1 < len(fields); i++ {
				v, err := strconv.ParseFloat(fields[i], 64)
				if err != nil {
					continue
				}
				switch fields[i+1] {
				case "ns/op":
					s.ns = append(s.ns, v)
				case "cpu-ns/op":
					s.cpu = append(s.cpu, v)
				case "allocs/op":
					s.allocs = append(s.allocs, v)
				}
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// row returns the median time per op and allocs/op of a row, if it was
// measured: process CPU time (cpu-ns/op) when the benchmark reports it, as
// BenchmarkOverhead and BenchmarkRefusal do — it does not stretch while
// other jobs hold the cores — else wall time (ns/op).
func row(m map[string]*sample, name string) (ns, allocs float64, ok bool) {
	s := m[name]
	if s == nil || len(s.ns) == 0 {
		return 0, 0, false
	}
	if len(s.allocs) > 0 {
		allocs = median(s.allocs)
	}
	if len(s.cpu) > 0 {
		return median(s.cpu), allocs, true
	}
	return median(s.ns), allocs, true
}

type summary struct {
	r      *results
	missed []string
	any    bool
}

func (s *summary) verdict(name string, ok bool) string {
	s.any = true
	if ok {
		return "met"
	}
	s.missed = append(s.missed, name)
	return "NOT MET"
}

// added returns what overhead row name adds over the base row.
func (s *summary) added(name string) (ns, allocs float64, ok bool) {
	bn, ba, ok1 := row(s.r.bench, "BenchmarkOverhead/base")
	n, a, ok2 := row(s.r.bench, "BenchmarkOverhead/"+name)
	return n - bn, a - ba, ok1 && ok2
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchsummary results.txt...")
		os.Exit(2)
	}
	r, err := read(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s := &summary{r: r}
	fmt.Println("Targets of issue 18 (medians of this run; in-memory times are CPU time per call, cpu-ns/op;")
	fmt.Println("'adds' = row minus the bare in-memory base):")
	s.overhead()
	s.loopbackTargets()
	s.contention()
	s.refusals()
	s.layers()
	if !s.any {
		fmt.Println("  (no target rows in these results)")
	}
	if len(s.missed) == 0 {
		fmt.Println("All targets measured in this run are met.")
		return
	}
	fmt.Printf("Targets not met in this run: %s\n", strings.Join(s.missed, ", "))
	if os.Getenv("BENCH_ENFORCE_TARGETS") == "1" {
		os.Exit(1)
	}
}

func (s *summary) overhead() {
	fn, fa, ok1 := s.added("outbound/5-layers")
	pn, pa, ok2 := s.added("failsafehttp/retry")
	if ok1 && ok2 {
		fmt.Printf("  5 layers (requestid, budget, retry, circuit, ratelimit) add %.0f ns, %.0f allocs; failsafehttp retry adds %.0f ns, %.0f allocs\n", fn, fa, pn, pa)
		fmt.Printf("    time: ratio %.2f (target < 1)  [%s]\n", fn/pn, s.verdict("5-layers time", fn < pn))
		fmt.Printf("    allocs: %.0f over bare (target <= 8)  [%s]\n", fa, s.verdict("5-layers allocs", fa <= 8))
		if hn, ha, ok := s.added("floor/header-copy"); ok {
			// The request-ID layer cannot add its header for less: the
			// caller's request and header map are copied, never changed.
			fmt.Printf("    for scale: copying the request and its header map to add one header adds %.0f ns, %.0f allocs (floor/header-copy);\n", hn, ha)
			fmt.Printf("      the 5 layers less that floor add %.0f ns: %.2f of failsafehttp retry (no target)\n", fn-hn, (fn-hn)/pn)
		}
	}
	dn, da, ok1 := s.added("outbound/default")
	fn, fa, ok2 = s.added("failsafehttp/retry+circuit+bulkhead")
	if ok1 && ok2 {
		fmt.Printf("  NewClient(DefaultConfig()) adds %.0f ns, %.0f allocs; failsafehttp retry+circuit+bulkhead adds %.0f ns, %.0f allocs\n", dn, da, fn, fa)
		fmt.Printf("    time: ratio %.2f (target <= 1.30)  [%s]\n", dn/fn, s.verdict("DefaultConfig vs failsafehttp", dn <= 1.3*fn))
	}
	un, ua, ok1 := s.added("outbound/default-untraced")
	an, aa, ok2 := s.added("failsafehttp/as-default")
	if ok1 && ok2 {
		fmt.Printf("  for scale: failsafe-go doing DefaultConfig's work (request ID, User-Agent, timeout, retry and hedgepolicy p95 with a budget, circuit, bulkhead) adds %.0f ns, %.0f allocs;\n", an, aa)
		fmt.Printf("    NewClient(DefaultConfig()) with tracing off adds %.0f ns, %.0f allocs: %.2f of it (no target)\n", un, ua, un/an)
	}
}

func (s *summary) loopbackTargets() {
	for _, c := range []struct {
		client, label string
		target        float64
	}{
		{"default", "NewClient(DefaultConfig())", 0.90},
		{"default-untraced", "NewClient(DefaultConfig()), tracing off", 0.95},
	} {
		for _, callers := range []string{"1", "64"} {
			v, ok := s.r.loopback[c.client+"@"+callers]
			if !ok {
				continue
			}
			fmt.Printf("  loopback, %2s callers: %s throughput / bare = %.2f (paired rounds, quartiles %.2f-%.2f; target >= %.2f)  [%s]\n",
				callers, c.label, v[0], v[1], v[2], c.target, s.verdict("loopback "+c.client+" "+callers, v[0] >= c.target))
		}
	}
	for _, callers := range []string{"1", "64"} {
		if v, ok := s.r.loopback["failsafe-as-default@"+callers]; ok {
			fmt.Printf("  for scale: loopback, %2s callers: failsafe-go doing DefaultConfig's work, throughput / bare = %.2f (quartiles %.2f-%.2f; no target)\n",
				callers, v[0], v[1], v[2])
		}
	}
}

func (s *summary) contention() {
	d1, _, ok1 := row(s.r.parallel, "default@1")
	d2, _, ok2 := row(s.r.parallel, "default@2")
	if !ok1 || !ok2 {
		return
	}
	line := fmt.Sprintf("  RunParallel, NewClient(DefaultConfig()): per-call cost at 2 CPUs / at 1 = %.2f (%.0f ns / %.0f ns; target <= 0.60)", d2/d1, d2, d1)
	if b1, _, ok := row(s.r.parallel, "bare@1"); ok {
		if b2, _, ok := row(s.r.parallel, "bare@2"); ok {
			line += fmt.Sprintf("; bare base %.2f, what the machine gave this run", b2/b1)
		}
	}
	fmt.Printf("%s  [%s]\n", line, s.verdict("contention", d2/d1 <= 0.6))
}

func (s *summary) refusals() {
	for _, c := range []string{"circuit-open", "limit-full", "budget-exhausted"} {
		n, a, ok := row(s.r.bench, "BenchmarkRefusal/"+c)
		if !ok {
			continue
		}
		fmt.Printf("  refusal, %s: %.0f ns, %.0f allocs (target <= 300 ns, <= 2 allocs)  [%s]\n",
			c, n, a, s.verdict("refusal "+c, n <= 300 && a <= 2))
	}
}

// layers prints what each stack and layer of the overhead table adds, for
// the record (no target of its own).
func (s *summary) layers() {
	var lines []string
	for _, name := range []string{
		"outbound/5-layers", "outbound/stack", "outbound/default", "outbound/default-untraced",
		"outbound/requestid", "outbound/budget", "outbound/retry", "outbound/hedge", "outbound/header",
		"outbound/circuit", "outbound/ratelimit", "outbound/tracing-noop",
		"floor/header-copy", "retryablehttp/retry", "failsafehttp/retry", "failsafehttp/retry+circuit+bulkhead",
		"failsafehttp/as-default", "otelhttp/noop",
	} {
		if n, a, ok := s.added(name); ok {
			lines = append(lines, fmt.Sprintf("    %-38s %7.0f ns %4.0f allocs", name, n, a))
		}
	}
	if len(lines) > 0 {
		fmt.Println("What each row adds over the bare base (for the record):")
		fmt.Println(strings.Join(lines, "\n"))
	}
}
