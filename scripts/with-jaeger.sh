#!/usr/bin/env bash
# Usage: with-jaeger.sh COMMAND...
# Runs COMMAND while a Jaeger (v1.76.0, the tool pinned in tools/jaeger) is
# built or reused (build_jaeger below) and started, listening on loopback
# only: OTLP/HTTP on 127.0.0.1:$JAEGER_OTLP_PORT (default 24318) and the query
# API on 127.0.0.1:$JAEGER_QUERY_PORT (default 26686), in-memory storage
# (tools/jaeger/config.yaml). Stops Jaeger (and a build still running)
# afterwards whatever COMMAND's outcome.
#
# Exports JAEGER_OTLP_ENDPOINT, JAEGER_QUERY_URL and JAEGER_STATE for the
# end-to-end test in transport/tracing/otelsetup, which skips without them.
# JAEGER_STATE names a file that holds "building" until Jaeger listens, then
# "ready", or "failed" followed by the build's or Jaeger's log.
#
# A cold build compiles Jaeger and the OpenTelemetry Collector it is made of:
# about 1 000 CPU-seconds optimized, fewer as build_jaeger builds it
# (docs/tracing.md, "Build time"). So it runs in the
# background, at the lowest CPU priority, while COMMAND runs the other
# modules' tests, which keep the CPU they want; the test waits for
# JAEGER_STATE. A warm run reuses the executable at once.
#
# JAEGER_UI_DIR, when set, is a built jaeger-ui directory served at the query
# port instead of the placeholder page the Go module ships.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib.sh"
export JAEGER_OTLP_PORT=${JAEGER_OTLP_PORT:-24318}
export JAEGER_QUERY_PORT=${JAEGER_QUERY_PORT:-26686}
export JAEGER_QUERY_GRPC_PORT=${JAEGER_QUERY_GRPC_PORT:-26685}
export JAEGER_UI_DIR=${JAEGER_UI_DIR:-}

# build_jaeger prints the path of a Jaeger executable, built the first time
# and kept in $JAEGER_BIN_CACHE (default ~/.cache/outbound) under a name
# derived from the Go version, tools/jaeger's go.mod and go.sum and the build flags, so
# a change of any of them builds afresh. Jaeger only serves the tests, so it
# is compiled without optimization or inlining and linked without symbol
# tables or DWARF: less CPU than `go tool jaeger`'s optimized build, on a
# fresh machine where this build is make test's critical path (a fresh
# make test went from 950 s to 776 s; docs/tracing.md, "Build time").
build_jaeger() {
	local flags=(-trimpath "-gcflags=all=-N -l" "-ldflags=-s -w")
	local key cache
	key=$( (cd "$root/tools/jaeger" && GOWORK=off go version && GOWORK=off go env GOFLAGS CGO_ENABLED GOOS GOARCH GOAMD64 &&
		cat go.mod go.sum && echo "${flags[*]}") | sha256sum | cut -c1-16) || return 1
	cache=${JAEGER_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/outbound}
	if [ ! -x "$cache/jaeger-$key" ]; then
		mkdir -p "$cache" || return 1
		# GOGC=400: the compiler collects garbage a quarter as often, for
		# about a tenth less CPU in a cold build and under 1 GB per compile
		# (measured on three of Jaeger's largest dependency trees; 1000 saved
		# nothing more). Only this build: the tests keep the default.
		(cd "$root/tools/jaeger" && GOWORK=off GOGC=400 nice -n 19 go build "${flags[@]}" -o "$cache/jaeger-$key.tmp$$" github.com/jaegertracing/jaeger/cmd/jaeger) || return 1
		mv "$cache/jaeger-$key.tmp$$" "$cache/jaeger-$key" || return 1
	fi
	# Other checkouts (another go.sum, Go version or flags) may still use
	# their executables: only those unused for two weeks go, and builds
	# left behind by a killed run after a day. set -e does not hold in a
	# function called from a condition, hence the || return 1 above.
	touch "$cache/jaeger-$key"
	find "$cache" -mindepth 1 -maxdepth 1 -name 'jaeger-*' ! -name "jaeger-$key" \( -mtime +14 -o -name '*.tmp*' -mtime +1 \) -delete 2>/dev/null || true
	echo "$cache/jaeger-$key"
}

dir=$(mktemp -d)
state="$dir/state"
echo building >"$state"

# The builder runs in a process group of its own (set -m), so stopping it
# stops the go command, its compilers and Jaeger together.
set -m
(
	start=$SECONDS
	if ! bin=$(build_jaeger 2>"$dir/build.log"); then
		{ echo failed; echo "building jaeger (tools/jaeger) failed:"; cat "$dir/build.log"; } >"$state.tmp"
		mv "$state.tmp" "$state"
		exit 1
	fi
	echo "with-jaeger.sh: jaeger built or reused in $((SECONDS - start)) s" >&2
	"$bin" --config "$root/tools/jaeger/config.yaml" >"$dir/jaeger.log" 2>&1 &
	pid=$!
	echo "$pid" >"$dir/jaeger.pid"
	listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
	for _ in $(seq 1 300); do
		if ! kill -0 "$pid" 2>/dev/null; then
			break
		fi
		if listening "$JAEGER_OTLP_PORT" && listening "$JAEGER_QUERY_PORT"; then
			echo ready >"$state"
			wait "$pid"
			exit 0
		fi
		sleep 0.1
	done
	{ echo failed; echo "jaeger did not listen on 127.0.0.1:$JAEGER_OTLP_PORT and :$JAEGER_QUERY_PORT within 30 s; its log:"; cat "$dir/jaeger.log"; } >"$state.tmp"
	mv "$state.tmp" "$state"
	kill "$pid" 2>/dev/null || true
	exit 1
) &
builder=$!
set +m
# The subshell dies at once on TERM while Jaeger is still shutting down and
# writing its log into $dir, so wait for Jaeger itself (lib.sh).
stop() {
	status=$?
	kill -TERM -- "-$builder" 2>/dev/null || true
	wait "$builder" 2>/dev/null || true
	stop_then_remove "$dir/jaeger.pid" "$dir"
	exit "$status"
}
trap stop EXIT

export JAEGER_OTLP_ENDPOINT="http://127.0.0.1:$JAEGER_OTLP_PORT"
export JAEGER_QUERY_URL="http://127.0.0.1:$JAEGER_QUERY_PORT"
export JAEGER_STATE="$state"
"$@"
