// Package hardening holds no code (it is internal, so it is no public
// package of the module): its tests drive the whole standard stack
// (outbound.NewClient) against hostile upstreams over real loopback sockets —
// endless and trickling bodies, oversized headers, absurd Retry-After values,
// 1xx floods, wrong Content-Length, cross-host redirects, stalled TLS
// handshakes — under load, with secrets in every input, and under random
// fault sequences, and fail when the stack hangs, leaks goroutines, memory or
// connections, loses or duplicates a request body, or shows a secret in an
// error, a log record or telemetry.
//
// docs/reliability.md lists each threat, the test that covers it and the
// figures measured. Run it with `go test -race ./internal/hardening`; the long soak
// runs with OUTBOUND_SOAK=1 (make soak).
package hardening
