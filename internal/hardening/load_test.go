package hardening_test

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/outboundhttp/outbound"
)

// loadParams sizes one load run.
type loadParams struct {
	calls    int           // logical calls in all (0: run for duration)
	duration time.Duration // when calls is 0
	callers  int           // concurrent callers
	failRate float64       // share of attempts answered 502/503/504
	seed     uint64
	// sample, when set, is called every sampleEvery during the run.
	sample      func(done int64)
	sampleEvery time.Duration
}

// loadResult is what a run measured.
type loadResult struct {
	calls, ok, failed, errs int64
	attempts                int64 // requests the server received
	accepted, maxOpen       int64 // TCP connections: accepted in all, most open at once
	elapsed                 time.Duration
	firstErr                error
}

// flakyUpstream answers failRate of the requests with a transient 5xx, drawn
// from a seeded generator in order of arrival, and counts connections.
type flakyUpstream struct {
	srv      *httptest.Server
	mu       sync.Mutex
	rng      *rand.Rand
	failRate float64
	attempts atomic.Int64
	accepted atomic.Int64
	open     atomic.Int64
	maxOpen  atomic.Int64
}

var transientStatuses = []int{http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}

func newFlakyUpstream(failRate float64, seed uint64) *flakyUpstream {
	u := &flakyUpstream{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), failRate: failRate}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(u.serve))
	u.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			u.accepted.Add(1)
			n := u.open.Add(1)
			for {
				m := u.maxOpen.Load()
				if n <= m || u.maxOpen.CompareAndSwap(m, n) {
					break
				}
			}
		case http.StateClosed, http.StateHijacked:
			u.open.Add(-1)
		}
	}
	u.srv.Start()
	return u
}

func (u *flakyUpstream) serve(w http.ResponseWriter, r *http.Request) {
	u.attempts.Add(1)
	io.Copy(io.Discard, r.Body)
	u.mu.Lock()
	fail := u.rng.Float64() < u.failRate
	code := transientStatuses[u.rng.IntN(len(transientStatuses))]
	u.mu.Unlock()
	if fail {
		w.WriteHeader(code)
		io.WriteString(w, "transient failure")
		return
	}
	io.WriteString(w, `{"status":"ok","payload":"0123456789abcdef0123456789abcdef"}`)
}

// loadConfig is DefaultConfig as it is: the load tests are what a new user
// meets with nothing tuned. (They used to raise the queue to 500 and the idle
// pool to 100 by hand; those are the defaults now.)
func loadConfig() outbound.Config { return outbound.DefaultConfig() }

// runLoad drives p.callers concurrent callers through one standard client
// against a flaky loopback upstream, then closes both.
func runLoad(t testing.TB, cfg outbound.Config, p loadParams) loadResult {
	u := newFlakyUpstream(p.failRate, p.seed)
	c, err := outbound.NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	var res loadResult
	var next, ok, failed, errs atomic.Int64
	var errOnce sync.Once
	deadline := time.Now().Add(p.duration)
	more := func() bool {
		n := next.Add(1)
		if p.calls > 0 {
			return n <= int64(p.calls)
		}
		return time.Now().Before(deadline)
	}
	stopSampling := make(chan struct{})
	var sampler sync.WaitGroup
	if p.sample != nil {
		sampler.Add(1)
		go func() {
			defer sampler.Done()
			tick := time.NewTicker(p.sampleEvery)
			defer tick.Stop()
			for {
				select {
				case <-stopSampling:
					return
				case <-tick.C:
					p.sample(ok.Load() + failed.Load() + errs.Load())
				}
			}
		}()
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < p.callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for more() {
				resp, _, err := get(context.Background(), c, u.srv.URL)
				if err != nil {
					errs.Add(1)
					errOnce.Do(func() { res.firstErr = err })
					continue
				}
				_, rerr := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch {
				case rerr != nil:
					errs.Add(1)
					errOnce.Do(func() { res.firstErr = rerr })
				case resp.StatusCode == 200:
					ok.Add(1)
				default:
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	close(stopSampling)
	sampler.Wait()
	c.CloseIdleConnections()
	u.srv.Close()
	res.ok, res.failed, res.errs = ok.Load(), failed.Load(), errs.Load()
	res.calls = res.ok + res.failed + res.errs
	res.attempts = u.attempts.Load()
	res.accepted, res.maxOpen = u.accepted.Load(), u.maxOpen.Load()
	return res
}

// connLimit is the most connections a load run of calls may open: the pool's
// MaxConnsPerHost, plus one per 1000 calls. The pool alone would be exact on
// an idle machine (it is, in most runs), but under heavy scheduler pressure
// net/http itself now and then retires a connection instead of reusing it
// (it does not reuse a connection whose request write it has not seen finish
// within 50 ms of the response); soaks show about one such in 50 000 calls.
func connLimit(cfg outbound.Config, calls int64) int64 {
	return int64(cfg.MaxConnsPerHost) + calls/1000
}

// TestLoad: 20 000 calls from 500 concurrent callers through the whole stack
// against a loopback upstream that fails 5 % of attempts with a transient
// 5xx. Every call must succeed (retries absorb the failures), no goroutine
// may outlive the run, connections must be reused (no more accepted than the
// pool's MaxConnsPerHost of 100, give or take connLimit's allowance), and the
// live heap afterwards must stay within 16 MiB of where it started.
//
// DefaultConfig keeps as many idle connections per host as may be open: with
// the article's 20, every dip in concurrency below 100 closed the surplus
// idle connections, and the next rise dialed new ones (measured: 344
// connections for 20 000 calls, at a third of the throughput).
//
// Under the race detector, which slows the stack three- to tenfold, the run
// is 10 000 calls from 250 callers (see below), so `make test` stays well
// under a minute on two busy cores; without it, the full 20 000 from 500.
func TestLoad(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := loadParams{calls: 20000, callers: 500, failRate: 0.05, seed: 12}
	if raceEnabled {
		// The race detector slows the stack three- to tenfold, so the same
		// callers would wait that much longer for a slot: keep their wait,
		// not their number. 250 callers still queue for the 100 slots, and
		// a caller waits about callers/throughput, well inside the 2 s pool
		// timeout even on a busy machine (measured: 23 s for 10 000 calls
		// with 500 callers while other test binaries took both cores, and
		// 375 calls refused after their 2 s wait, as the timeout says).
		p.calls, p.callers = 10000, 250
	}
	if testing.Short() {
		p.calls = 2000
	}
	cfg := loadConfig()
	heap0 := heapAfterGC()
	res := runLoad(t, cfg, p)
	heap1 := heapAfterGC()
	growth := int64(heap1) - int64(heap0)

	t.Logf("%d calls, %d callers, race %v: %v (%.0f calls/s); %d ok, %d failed, %d errors; %d attempts (amplification %.3f); %d connections accepted, %d open at most; live heap %+.1f MiB",
		res.calls, p.callers, raceEnabled, res.elapsed.Round(time.Millisecond), float64(res.calls)/res.elapsed.Seconds(),
		res.ok, res.failed, res.errs, res.attempts, float64(res.attempts)/float64(res.calls),
		res.accepted, res.maxOpen, float64(growth)/mib)

	if res.calls != int64(p.calls) {
		t.Fatalf("%d calls made; want %d", res.calls, p.calls)
	}
	if res.errs > 0 {
		t.Errorf("%d calls failed with an error; first: %v", res.errs, res.firstErr)
	}
	// Four attempts all failing has probability 0.05^4: expect none; allow a
	// few, and retry-budget refusals, whose floor is per second.
	if res.failed > int64(p.calls)/500 {
		t.Errorf("%d calls ended in a 5xx; retries should absorb nearly all 5 %% failures", res.failed)
	}
	if amp := float64(res.attempts) / float64(res.calls); amp > 1.1 {
		t.Errorf("amplification %.3f; want about 1.05", amp)
	}
	if limit := connLimit(cfg, res.calls); res.accepted > limit {
		t.Errorf("%d connections accepted; want at most %d: the pool's %d, plus one per 1000 calls", res.accepted, limit, cfg.MaxConnsPerHost)
	}
	if growth > 16*mib {
		t.Errorf("live heap grew by %.1f MiB; want at most 16 MiB", float64(growth)/mib)
	}
}

// TestBurstDefaultConfig is the burst of issue 15 on DefaultConfig, nothing
// tuned: 10 000 calls from 300 concurrent callers against a healthy loopback
// upstream that answers 5 % of attempts with a transient 5xx. With a queue as
// short as the concurrency limit, 9 723 of these calls were refused at once
// ("queue full"), and an idle pool of 20 against 100 connections redialed 80
// connections after every dip. Now: at most 10 calls may fail, at most 110
// connections may be opened, and no goroutine may outlive the run.
func TestBurstDefaultConfig(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := loadParams{calls: 10000, callers: 300, failRate: 0.05, seed: 15}
	if testing.Short() {
		p.calls = 2000
	}
	res := runLoad(t, outbound.DefaultConfig(), p)
	t.Logf("%d calls, %d callers, race %v: %v (%.0f calls/s); %d ok, %d failed, %d errors (first: %v); %d attempts; %d connections accepted, %d open at most",
		res.calls, p.callers, raceEnabled, res.elapsed.Round(time.Millisecond), float64(res.calls)/res.elapsed.Seconds(),
		res.ok, res.failed, res.errs, res.firstErr, res.attempts, res.accepted, res.maxOpen)
	if bad := res.failed + res.errs; bad > 10 {
		t.Errorf("%d of %d calls failed (first error: %v); want at most 10", bad, res.calls, res.firstErr)
	}
	if res.accepted > 110 {
		t.Errorf("%d connections accepted; want at most 110", res.accepted)
	}
}
