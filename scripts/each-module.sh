#!/usr/bin/env bash
# Usage: each-module.sh [-x DIR]... COMMAND...
# Runs COMMAND in the folder of every Go module of the repository (every go.mod
# git knows or would add, outside testdata/), the root module first, one after
# another, and keeps going when one fails; exits non-zero naming the modules
# that failed. -x DIR skips the module in DIR (e.g. -x bench).
#
# The modules find each other through replace directives, not a go.work:
# GOWORK=off, so a go.work in or above the checkout changes nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
skip=" "
while [ "${1:-}" = -x ]; do
	skip+="${2%/} "
	shift 2
done
if [ $# -eq 0 ]; then
	echo "usage: each-module.sh [-x DIR]... COMMAND..." >&2
	exit 2
fi
export GOWORK=off

mapfile -t mods < <(git ls-files --cached --others --exclude-standard -- ':(glob)**/go.mod' |
	grep -v -e '^testdata/' -e '/testdata/' | xargs -r -n1 dirname | sort -u)
failed=()
for m in "${mods[@]}"; do
	case "$skip" in *" $m "*) continue ;; esac
	if [ "$m" = . ]; then
		echo "== module . ($(sed -n 's/^module //p' go.mod))"
	else
		echo "== module $m ($(sed -n 's/^module //p' "$m/go.mod"))"
	fi
	if ! (cd "$m" && "$@"); then
		failed+=("$m")
	fi
done
if [ "${#failed[@]}" -gt 0 ]; then
	echo "each-module.sh: $* failed in ${#failed[@]} of the modules: ${failed[*]}" >&2
	exit 1
fi
