#!/usr/bin/env bash
# make bench: the overhead of outbound's stack against the peers (bench/, its
# own module: go-retryablehttp, failsafe-go's failsafehttp, otelhttp), keep-alive
# throughput over loopback, and every package's own benchmarks; prints benchstat
# tables and the targets of docs/perf/peers.md as ratios from this one run.
#
# Environment: BENCH_COUNT (passes, default 6: benchstat wants 6 for a confidence interval), BENCH_TIME
# (-benchtime of the in-memory benchmarks, default 100ms), BENCH_LOOPBACK=0 to
# skip the loopback runs, BENCH_PACKAGES=0 to skip the per-package benchmarks,
# BENCH_OUT (directory for the raw results, default a new temporary one).
# The machine is noisy when shared: compare rows of one run, not across runs.
set -euo pipefail
cd "$(dirname "$0")/.."
benchstat=golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
count=${BENCH_COUNT:-6}
benchtime=${BENCH_TIME:-100ms}
out=${BENCH_OUT:-$(mktemp -d)}
mkdir -p "$out"
start=$(date +%s)

# The peer benchmarks run as `count` passes over every case (one binary, built
# once), so a change of load on a shared machine hits every row of a pass alike
# and the medians compare rows measured side by side.
(cd bench && go test -c -o "$out/bench.test" .)
echo "== peers: overhead over an in-memory base, then loopback keep-alive throughput (bench/), $count passes"
for i in $(seq "$count"); do
	(cd bench && "$out/bench.test" -test.run '^$' -test.bench '^BenchmarkOverhead$' -test.benchmem -test.benchtime "$benchtime") | grep '^Benchmark' >>"$out/peers.txt"
	if [ "${BENCH_LOOPBACK:-1}" != 0 ]; then
		(cd bench && "$out/bench.test" -test.run '^$' -test.bench '^BenchmarkLoopback$' -test.benchmem -test.benchtime 300ms) | grep '^Benchmark' >>"$out/loopback.txt"
	fi
done
if [ "${BENCH_PACKAGES:-1}" != 0 ]; then
	echo "== per-package benchmarks (root module)"
	go test -run '^$' -bench . -benchmem -count "$count" -benchtime "$benchtime" ./... >"$out/packages.txt"
fi

for f in peers loopback packages; do
	[ -f "$out/$f.txt" ] || continue
	echo
	echo "== $f"
	go run "$benchstat" "$out/$f.txt"
done
echo
files=("$out/peers.txt")
[ -f "$out/loopback.txt" ] && files+=("$out/loopback.txt")
cat "${files[@]}" >"$out/summary-input.txt"
(cd bench && go run ./cmd/benchsummary "$out/summary-input.txt")
if [ "${BENCH_LOOPBACK:-1}" != 0 ]; then
	echo
	echo "Loopback throughput in paired rounds (the ratio to quote on a shared machine):"
	(cd bench && "$out/bench.test" -test.run '^TestLoopbackRatio$' -test.v) | grep -E 'callers:|target not met' | sed 's/^ *loopback_test.go:[0-9]*: /  /' || true
fi
echo
echo "raw results in $out ($(($(date +%s) - start)) s)"
