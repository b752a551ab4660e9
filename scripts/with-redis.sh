#!/usr/bin/env bash
# Usage: with-redis.sh PORT COMMAND...
# Runs COMMAND with REDIS_ADDR pointing at a redis-server on 127.0.0.1:PORT,
# installing redis-server from Debian's packages if it is missing, and stops the
# server afterwards whatever COMMAND's outcome.
set -euo pipefail
port=$1; shift
. "$(dirname "$0")/lib.sh"

if ! command -v redis-server >/dev/null 2>&1; then
	if [ "$(id -u)" -eq 0 ]; then
		echo "installing redis-server (apt-get)..." >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >/dev/null
		apt-get install -y -qq --no-install-recommends redis-server >/dev/null
	else
		echo "redis-server is not installed and this user cannot install it; run as root or install it" >&2
		exit 1
	fi
fi

dir=$(mktemp -d)
redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
	--dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
stop() {
	status=$?
	pid=$(cat "$dir/redis.pid" 2>/dev/null) || pid=
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
	stop_then_remove "$dir/redis.pid" "$dir"
	exit "$status"
}
trap stop EXIT
for _ in $(seq 1 50); do
	if redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then break; fi
	sleep 0.1
done
redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null

export REDIS_ADDR="127.0.0.1:$port"
export OUTBOUND_REQUIRE_REDIS=1
# redis-server's path, so a test can start its own instance (to kill it mid-test).
export REDIS_SERVER_BIN="$(command -v redis-server)"
"$@"
