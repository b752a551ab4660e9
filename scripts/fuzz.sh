#!/usr/bin/env bash
# Usage: fuzz.sh [FUZZTIME] — runs every Fuzz target in the root module (the
# other modules, bench/, cmd/outbound-chaos, examples/, redisrate and otelsetup,
# have none) for FUZZTIME each (default 10s), one at a time:
# `go test -fuzz` takes one target of one package per run. A failing input is
# written by go test under the package's testdata/fuzz/<Target>/; commit it, so
# the plain `go test` (make test) replays it as a regression case from then on.
set -euo pipefail
fuzztime=${1:-10s}
failed=()
count=0
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		echo "== $pkg $target"
		count=$((count + 1))
		if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"; then
			failed+=("$pkg $target")
		fi
	done
done
if [ "$count" -eq 0 ]; then
	echo "fuzz.sh: no Fuzz targets found" >&2
	exit 1
fi
if [ "${#failed[@]}" -gt 0 ]; then
	echo "fuzz.sh: ${#failed[@]} of $count targets failed:" >&2
	printf '  %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "fuzz.sh: all $count targets passed ($fuzztime each)"
