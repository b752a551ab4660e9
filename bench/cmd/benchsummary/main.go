// Command benchsummary reads `go test -bench` output of the bench module and
// prints the targets of docs/perf/peers.md as ratios measured in that run:
// what each stack adds over the bare in-memory base (median ns/op and
// allocs/op of every run), and the loopback throughput ratio.
//
//	go run ./cmd/benchsummary results.txt
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

type sample struct{ ns, allocs []float64 }

var suffix = regexp.MustCompile(`-\d+$`)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: benchsummary results.txt")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer f.Close()
	res := map[string]*sample{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		name := suffix.ReplaceAllString(fields[0], "")
		s := res[name]
		if s == nil {
			s = &sample{}
			res[name] = s
		}
		for i := 2; i+1 < len(fields); i++ {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			switch fields[i+1] {
			case "ns/op":
				s.ns = append(s.ns, v)
			case "allocs/op":
				s.allocs = append(s.allocs, v)
			}
		}
	}
	med := func(name string, pick func(*sample) []float64) (float64, bool) {
		s := res[name]
		if s == nil || len(pick(s)) == 0 {
			return 0, false
		}
		v := slices.Clone(pick(s))
		slices.Sort(v)
		return v[len(v)/2], true
	}
	ns := func(s *sample) []float64 { return s.ns }
	al := func(s *sample) []float64 { return s.allocs }
	// added returns what name adds over the base row: ns and allocs.
	added := func(name string) (float64, float64, bool) {
		bn, ok1 := med("BenchmarkOverhead/base", ns)
		ba, _ := med("BenchmarkOverhead/base", al)
		n, ok2 := med("BenchmarkOverhead/"+name, ns)
		a, _ := med("BenchmarkOverhead/"+name, al)
		return n - bn, a - ba, ok1 && ok2
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT MET"
	}
	fmt.Println("Targets (medians of this run; 'adds' = stack minus the bare in-memory base):")
	if sn, sa, ok := added("outbound/stack"); ok {
		for _, peer := range []string{"failsafehttp/retry", "retryablehttp/retry"} {
			pn, pa, ok := added(peer)
			if !ok {
				continue
			}
			cmp := "<"
			met := sn < pn && sa < pa
			if peer == "retryablehttp/retry" {
				cmp, met = "<=", sn <= pn && sa <= pa
			}
			fmt.Printf("  outbound/stack adds %.0f ns, %.0f allocs; %s adds %.0f ns, %.0f allocs: time ratio %.2f (target %s 1), allocs %+.0f  [%s]\n",
				sn, sa, peer, pn, pa, sn/pn, cmp, sa-pa, verdict(met))
		}
	}
	if tn, ta, ok := added("outbound/tracing-noop"); ok {
		if on, oa, ok := added("otelhttp/noop"); ok {
			fmt.Printf("  outbound tracing layers (noop) add %.0f ns, %.0f allocs; otelhttp (noop) adds %.0f ns, %.0f allocs: ratio %.2f (target <= 1.10)  [%s]\n",
				tn, ta, on, oa, tn/on, verdict(tn <= 1.10*on))
		}
	}
	for _, callers := range []string{"1", "64"} {
		bare, ok1 := med("BenchmarkLoopback/bare/callers="+callers, ns)
		for _, st := range []string{"stack", "stack+tracing-noop"} {
			s, ok2 := med("BenchmarkLoopback/"+st+"/callers="+callers, ns)
			if !ok1 || !ok2 {
				continue
			}
			line := fmt.Sprintf("  loopback %s callers: %s throughput / bare = %.2f", callers, st, bare/s)
			if callers == "64" {
				line += fmt.Sprintf(" (target >= 0.95)  [%s]", verdict(bare/s >= 0.95))
			}
			fmt.Println(line)
		}
	}
}
