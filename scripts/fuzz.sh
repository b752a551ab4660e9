#!/usr/bin/env bash
# Usage: fuzz.sh FUZZTIME — runs every Fuzz target in the module for FUZZTIME each.
set -euo pipefail
fuzztime=${1:-10s}
status=0
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		echo "== $pkg $target"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" || status=1
	done
done
exit $status
