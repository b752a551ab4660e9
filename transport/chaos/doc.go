// Package chaos injects failures into outbound HTTP calls so a client stack
// can be drilled before launch: added latency, error statuses, 429 bursts with
// Retry-After, connection resets, hanging attempts, stalled and trickling
// bodies, outage windows, and an upstream of fixed capacity that queues and
// sheds under overload, per host and reproducible from a seed.
//
// It has two halves that play the same Scenario:
//
//   - Transport, a fault-injecting http.RoundTripper for unit tests: put it
//     at the bottom of the stack under test, in place of (or in front of) the
//     real transport.
//   - Server, a flaky upstream on a loopback socket for end-to-end drills:
//     real resets (the connection is hijacked and closed with SO_LINGER 0),
//     real hangs, real stalled bodies. It records every request it received,
//     and Analyze turns the recording into amplification, politeness
//     violations and non-idempotent requests delivered or processed twice.
//     WithIdempotency makes it honour Idempotency-Key as Stripe's API does:
//     a key's work is done once, and a retry gets the stored answer.
//
// The shortest drill:
//
//	srv := chaos.NewServer(chaos.Scenario{Seed: 1, Faults: []chaos.Fault{
//		chaos.Status(503).WithProbability(0.1),
//	}})
//	url, err := srv.Start()
//	...
//	defer srv.Close()
//	// make n calls to url with the client under test, then:
//	rep := chaos.Analyze(srv.Records(), n)
//
// Faults are decided from a seeded PCG generator: the same seed and the same
// sequence of requests give the same sequence of faults. Time windows are
// measured with time.Now and every wait is a real timer, so in a
// testing/synctest bubble (a Transport or Server created inside it, over
// in-memory connections) they take no real time and tests need not sleep.
package chaos
