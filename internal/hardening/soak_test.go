package hardening_test

import (
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestSoak is TestLoad for minutes instead of seconds: 500 callers through
// the standard stack against the 5 %-flaky upstream for
// OUTBOUND_SOAK_DURATION (default 3m). Every 10 s it samples the live heap
// and the goroutine count; after a one-minute warm-up neither may keep
// growing. It runs only with OUTBOUND_SOAK=1 (make soak).
func TestSoak(t *testing.T) {
	if os.Getenv("OUTBOUND_SOAK") != "1" {
		t.Skip("set OUTBOUND_SOAK=1 (make soak) to run the soak test")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dur := 3 * time.Minute
	if v := os.Getenv("OUTBOUND_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("OUTBOUND_SOAK_DURATION: %v", err)
		}
		dur = d
	}
	type sample struct {
		at         time.Duration
		calls      int64
		heap       uint64
		goroutines int
	}
	var mu sync.Mutex
	var samples []sample
	start := time.Now()
	p := loadParams{duration: dur, callers: 500, failRate: 0.05, seed: 7, sampleEvery: 10 * time.Second,
		sample: func(done int64) {
			s := sample{at: time.Since(start).Round(time.Second), calls: done, heap: heapAfterGC(), goroutines: runtime.NumGoroutine()}
			mu.Lock()
			samples = append(samples, s)
			mu.Unlock()
		}}
	cfg := loadConfig()
	res := runLoad(t, cfg, p)
	t.Logf("soak %v: %d calls (%.0f/s), %d ok, %d failed, %d errors; amplification %.3f; %d connections accepted",
		res.elapsed.Round(time.Second), res.calls, float64(res.calls)/res.elapsed.Seconds(), res.ok, res.failed, res.errs,
		float64(res.attempts)/float64(res.calls), res.accepted)
	var base *sample
	for i := range samples {
		s := samples[i]
		t.Logf("  t=%v calls=%d heap=%.1f MiB goroutines=%d", s.at, s.calls, float64(s.heap)/mib, s.goroutines)
		if s.at < time.Minute && len(samples) > i+1 {
			continue
		}
		if base == nil {
			base = &samples[i]
			continue
		}
		if s.heap > base.heap+32*mib {
			t.Errorf("live heap grew from %.1f MiB at %v to %.1f MiB at %v", float64(base.heap)/mib, base.at, float64(s.heap)/mib, s.at)
		}
		if s.goroutines > base.goroutines+200 {
			t.Errorf("goroutines grew from %d at %v to %d at %v", base.goroutines, base.at, s.goroutines, s.at)
		}
	}
	if res.errs > 0 {
		t.Errorf("%d calls failed with an error; first: %v", res.errs, res.firstErr)
	}
	if limit := connLimit(cfg, res.calls); res.accepted > limit {
		t.Errorf("%d connections accepted; want at most %d", res.accepted, limit)
	}
}
