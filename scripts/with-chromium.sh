#!/usr/bin/env bash
# Usage: with-chromium.sh COMMAND...
# Runs COMMAND with CHROMIUM_BIN set to a headless-capable Chromium, installing
# Debian's chromium package if it is missing (as root, apt-get, as with-redis.sh
# installs redis-server). The browser tests (cmd/outbound-chaos's HTML scorecard)
# run when CHROMIUM_BIN is set and skip only when it is not, outside make test.
set -euo pipefail

find_chromium() {
	command -v chromium 2>/dev/null || command -v chromium-browser 2>/dev/null || true
}

bin=${CHROMIUM_BIN:-$(find_chromium)}
if [ -z "$bin" ]; then
	if [ "$(id -u)" -eq 0 ]; then
		echo "installing chromium (apt-get)..." >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >/dev/null
		# fonts-liberation: the fonts the charts are drawn in, so the browser
		# lays their text out with the widths the plotting library measured.
		apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
		bin=$(find_chromium)
	fi
	if [ -z "$bin" ]; then
		echo "chromium is not installed and this user cannot install it; run as root or install it" >&2
		exit 1
	fi
fi

export CHROMIUM_BIN="$bin"
"$@"
