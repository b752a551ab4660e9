package bench

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// hedgedhttp (TestStragglersPeers) keeps a pool of goroutines for the
// process's lifetime, with no way to stop it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/cristalhq/hedgedhttp.runInPool.func1"))
}

// targetMissed reports a performance target of issue 11 that this run did not
// meet. The targets are goals measured on a shared machine, not invariants: a
// miss is logged (and listed in docs/performance.md with its reason and plan)
// and fails the test only with BENCH_ENFORCE_TARGETS=1, so `go test ./...` in
// this module stays usable while a target is open.
func targetMissed(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("BENCH_ENFORCE_TARGETS") == "1" {
		t.Errorf("target not met: "+format, args...)
		return
	}
	t.Logf("TARGET NOT MET: "+format, args...)
}
