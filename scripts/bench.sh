#!/usr/bin/env bash
# make bench: what outbound's stack costs against the peers (bench/, its own
# module: go-retryablehttp, failsafe-go's failsafehttp, otelhttp) on an
# in-memory base, what a local refusal costs, how the stack scales with cores
# (RunParallel at -cpu 1,2), keep-alive throughput over loopback in paired
# rounds, and every package's own benchmarks; prints benchstat tables, then
# every target of issue 18 as a ratio measured in this one run
# (bench/cmd/benchsummary).
#
# Environment: BENCH_COUNT (passes, default 6: benchstat wants 6 for a
# confidence interval), BENCH_TIME (-benchtime of the in-memory benchmarks,
# default 100ms), BENCH_LOOPBACK=0 to skip the loopback rounds,
# BENCH_PACKAGES=0 to skip the per-package benchmarks, BENCH_OUT (directory
# for the raw results, default a new temporary one), BENCH_ENFORCE_TARGETS=1
# to fail (exit 1) when a target is missed. The machine is noisy when shared:
# compare rows of one run, not across runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOWORK=off
benchstat=golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
count=${BENCH_COUNT:-6}
benchtime=${BENCH_TIME:-100ms}
out=${BENCH_OUT:-$(mktemp -d)}
mkdir -p "$out"
start=$(date +%s)
echo "make bench at $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo ' (with uncommitted changes)'), load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"

# One binary, built once; each pass runs every case, so a change of load on a
# shared machine hits every row of a pass alike and the medians compare rows
# measured side by side.
(cd bench && go test -c -o "$out/bench.test" .)
run() { (cd bench && "$out/bench.test" -test.run '^$' -test.benchmem "$@") | grep '^Benchmark' || true; }
echo "== in-memory overhead, refusals and RunParallel at -cpu 1,2 (bench/), $count passes"
for i in $(seq "$count"); do
	run -test.bench '^BenchmarkOverhead$' -test.benchtime "$benchtime" >>"$out/peers.txt"
	run -test.bench '^BenchmarkRefusal$' -test.benchtime "$benchtime" >>"$out/peers.txt"
	run -test.bench '^BenchmarkParallel$' -test.benchtime "$benchtime" -test.cpu 1,2 >>"$out/parallel.txt"
done
if [ "${BENCH_LOOPBACK:-1}" != 0 ]; then
	echo "== loopback keep-alive throughput, paired rounds against bare (TestLoopbackRatio)"
	# The verdict is benchsummary's; the test itself only logs here.
	(cd bench && BENCH_ENFORCE_TARGETS= "$out/bench.test" -test.run '^TestLoopbackRatio$' -test.v) >"$out/loopback.txt" 2>&1 || true
	grep -E 'callers:' "$out/loopback.txt" | sed 's/^ *loopback_test.go:[0-9]*: /  /' || true
fi
if [ "${BENCH_PACKAGES:-1}" != 0 ]; then
	echo "== per-package benchmarks (root module)"
	go test -run '^$' -bench . -benchmem -count "$count" -benchtime "$benchtime" ./... >"$out/packages.txt"
fi

for f in peers parallel packages; do
	[ -f "$out/$f.txt" ] || continue
	echo
	echo "== $f"
	go run "$benchstat" "$out/$f.txt"
done
echo
files=("$out/peers.txt" "$out/parallel.txt")
[ -f "$out/loopback.txt" ] && files+=("$out/loopback.txt")
status=0
(cd bench && go run ./cmd/benchsummary "${files[@]}") || status=$?
echo
echo "raw results in $out ($(($(date +%s) - start)) s)"
exit "$status"
