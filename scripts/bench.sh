#!/usr/bin/env bash
# Runs the overhead benchmarks of every package and prints a benchstat table.
# The peer comparison lives in bench/ (its own module) when present.
set -euo pipefail
out=$(mktemp -d)
count=${BENCH_COUNT:-6}
go test -run '^$' -bench . -benchmem -count "$count" ./... | tee "$out/outbound.txt"
if [ -f bench/go.mod ]; then
	(cd bench && go test -run '^$' -bench . -benchmem -count "$count" ./...) | tee "$out/peers.txt"
fi
go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da "$out"/*.txt
echo "raw results in $out"
