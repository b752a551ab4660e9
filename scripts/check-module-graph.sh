#!/usr/bin/env bash
# Usage: check-module-graph.sh
# The module graph a program gets when it imports outbound (issue 19, §7): for
# each case below it creates a throwaway module in a temporary directory that
# requires github.com/outboundhttp/outbound (replaced by this checkout) and
# imports the case's packages, runs `go mod tidy` and `go list -m all` there,
# prints the module count, and fails if the graph holds a forbidden module:
# gRPC, the OTLP exporters and their protobufs, Redis, the code generator and
# what only they pull (the modules of transport/tracing/otelsetup,
# transport/ratelimit/redisrate and examples/, which are modules of their own).
#
# Needs the module proxy (GOPROXY as the environment has it) when the module
# cache is cold; ignores any go.work (GOWORK=off).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mod=github.com/outboundhttp/outbound
goversion=$(sed -n 's/^go //p' "$root/go.mod")

# Forbidden module paths: a path listed, or a path under one ending in "/".
# A module that is in the graph only because a forbidden one requires it (the
# yaml modules of the code generator, say) is reported as well.
forbidden=(
	google.golang.org/grpc google.golang.org/genproto/
	go.opentelemetry.io/otel/exporters/otlp/ go.opentelemetry.io/proto/otlp
	github.com/grpc-ecosystem/
	github.com/redis/go-redis/ github.com/go-redis/
	github.com/oapi-codegen/ github.com/getkin/kin-openapi
	github.com/oasdiff/ github.com/speakeasy-api/ github.com/vmware-labs/yaml-jsonpath
	github.com/dprotaso/go-yit
)

# case name, then the packages it imports
cases=(
	"retry-only:$mod/transport/retry"
	"root:$mod"
)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export GOWORK=off GOFLAGS=-mod=mod
failed=0
for c in "${cases[@]}"; do
	name=${c%%:*}
	pkgs=${c#*:}
	dir="$tmp/$name"
	mkdir -p "$dir"
	{
		echo "module example.com/importer"
		echo
		echo "go $goversion"
		echo
		echo "require $mod v0.0.0-00010101000000-000000000000"
		echo
		echo "replace $mod => $root"
	} >"$dir/go.mod"
	{
		echo "package main"
		echo
		echo "import ("
		for p in $pkgs; do echo "	_ \"$p\""; done
		echo ")"
		echo
		echo "func main() {}"
	} >"$dir/main.go"
	(cd "$dir" && go mod tidy >/dev/null)
	(cd "$dir" && go list -m all) >"$dir/modules.txt"
	n=$(wc -l <"$dir/modules.txt") # the importer included, as issue 19 counts
	(cd "$dir" && go mod graph) >"$dir/graph.txt"
	# Forbidden modules, then modules no path from the importer reaches
	# without going through a forbidden one.
	bad=$(awk -v list="${forbidden[*]}" '
		function bad(m,   i) {
			for (i = 1; i <= n; i++) if (m == f[i] || (f[i] ~ /\/$/ && index(m, f[i]) == 1)) return 1
			return 0
		}
		function path(m) { sub(/@.*/, "", m); return m }
		BEGIN { n = split(list, f, " ") }
		FILENAME ~ /graph/ { from[++e] = path($1); to[e] = path($2); next }
		{ mods[++k] = $0; if (k == 1) reach[$1] = 1 }
		END {
			for (grown = 1; grown; ) {
				grown = 0
				for (i = 1; i <= e; i++)
					if (reach[from[i]] && !reach[to[i]] && !bad(to[i])) { reach[to[i]] = 1; grown = 1 }
			}
			for (i = 2; i <= k; i++) {
				split(mods[i], w, " ")
				if (bad(w[1])) print mods[i]
				else if (!reach[w[1]]) print mods[i] " (required only through forbidden modules)"
			}
		}
	' "$dir/graph.txt" "$dir/modules.txt")
	if [ -n "$bad" ]; then
		echo "module graph: importing $pkgs: $n modules, $(echo "$bad" | wc -l) forbidden:" >&2
		echo "$bad" | sed 's/^/  /' >&2
		failed=1
	else
		echo "module graph: importing $pkgs ($name): $n modules, none forbidden"
	fi
done
exit "$failed"
