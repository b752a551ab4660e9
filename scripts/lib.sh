# Sourced by the with-*.sh scripts.

# stop_then_remove PIDFILE DIR: waits up to 10 s for the process whose PID
# PIDFILE holds to exit (it has already been asked to), kills it if it
# outlived the wait (only then, so a recycled PID is never hit), and removes
# DIR. A server still shutting down can write into DIR again (redis-server
# reopens its log file for every line), and rm then fails with "Directory
# not empty": a CI run failed so after every test had passed. Never fails,
# so an EXIT trap that calls it keeps COMMAND's exit status.
stop_then_remove() {
	local pid
	pid=$(cat "$1" 2>/dev/null) || pid=
	if [ -n "$pid" ]; then
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
	fi
	rm -rf "$2" 2>/dev/null || true
}
