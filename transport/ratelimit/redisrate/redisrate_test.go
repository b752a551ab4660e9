package redisrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/outboundhttp/outbound/transport/ratelimit"
)

func TestMain(m *testing.M) {
	// go-redis logs every failed dial to stderr through its package logger;
	// the tests kill Redis on purpose, so quiet it (test binary only).
	redis.SetLogger(quietLogger{})
	goleak.VerifyTestMain(m)
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// requireRedis reports whether a missing Redis must fail the tests (make test
// sets OUTBOUND_REQUIRE_REDIS=1) rather than skip them.
func requireRedis() bool { return os.Getenv("OUTBOUND_REQUIRE_REDIS") == "1" }

func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if requireRedis() {
		t.Fatalf("%s (OUTBOUND_REQUIRE_REDIS=1)", msg)
	}
	t.Skipf("%s; these tests need a real redis-server: run `make test` or `bash scripts/with-redis.sh 6392 go test ./transport/ratelimit/...`", msg)
}

// sharedRedis returns a client of the Redis at REDIS_ADDR, closed at the end
// of the test.
func sharedRedis(t *testing.T) *redis.Client {
	t.Helper()
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		skipOrFail(t, "REDIS_ADDR is not set")
	}
	return dial(t, addr)
}

func dial(t *testing.T, addr string) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		skipOrFail(t, "redis at %s: %v", addr, err)
	}
	return rdb
}

// prefix returns a key prefix no other test (or earlier run) uses.
func prefix(t *testing.T) string {
	return fmt.Sprintf("outbound-test:%s:%d:", t.Name(), time.Now().UnixNano())
}

// ownRedis starts a redis-server of this test's own on a free loopback port,
// so that the test can kill it. kill is idempotent and also runs at cleanup.
func ownRedis(t *testing.T) (addr string, kill func()) {
	t.Helper()
	bin := os.Getenv("REDIS_SERVER_BIN")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("redis-server"); err != nil {
			skipOrFail(t, "REDIS_SERVER_BIN is not set and redis-server is not on PATH")
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	kill = sync.OnceFunc(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	t.Cleanup(kill)
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			t.Fatalf("redis-server on %s did not start: %v\n%s", addr, err, log)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return addr, kill
}

// countingServer counts the requests that reach it.
func countingServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// hammer runs callers goroutines sending requests through rt until ctx ends,
// and returns the errors other than ErrLimited refusals and ctx ends.
func hammer(ctx context.Context, rt http.RoundTripper, url string, callers int) []error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := rt.RoundTrip(req)
				if err != nil {
					if !errors.Is(err, ratelimit.ErrLimited) && ctx.Err() == nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
					if errors.Is(err, ratelimit.ErrLimited) {
						// Refused: do not spin.
						time.Sleep(5 * time.Millisecond)
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	return errs
}

// Two replicas sharing one Redis limit admit the shared rate between them,
// not twice it.
func TestTwoReplicasShareOneLimit(t *testing.T) {
	rdb1 := sharedRedis(t)
	rdb2 := dial(t, rdb1.Options().Addr) // a second replica has its own client
	srv, hits := countingServer(t)
	limit := redis_rate.Limit{Rate: 20, Period: time.Second, Burst: 5}
	p := prefix(t)
	var fallbacks atomic.Int64
	obs := ratelimit.WithObserver(ratelimit.Observer{
		Fallback: func(context.Context, string, error) { fallbacks.Add(1) },
	})
	rt1 := ratelimit.NewTransport(srv.Client().Transport, ratelimit.WithSharedLimiter(New(rdb1, limit, WithPrefix(p), WithReplicas(2))), obs)
	rt2 := ratelimit.NewTransport(srv.Client().Transport, ratelimit.WithSharedLimiter(New(rdb2, limit, WithPrefix(p), WithReplicas(2))), obs)
	defer rt1.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var errs1, errs2 []error
	wg.Go(func() { errs1 = hammer(ctx, rt1, srv.URL, 5) })
	wg.Go(func() { errs2 = hammer(ctx, rt2, srv.URL, 5) })
	wg.Wait()
	for _, err := range append(errs1, errs2...) {
		t.Error(err)
	}
	got := hits.Load()
	// 5 (burst) + 2 s × 20/s = 45 shared; 90 if each replica had its own limit.
	t.Logf("two replicas admitted %d requests in 2 s under one limit of 20/s burst 5 (want ~45; ~90 if not shared)", got)
	if got < 35 || got > 55 {
		t.Fatalf("server saw %d requests; want 35..55", got)
	}
	if n := fallbacks.Load(); n != 0 {
		t.Fatalf("%d fallbacks with Redis up", n)
	}
}

// Killing Redis mid-test: fail open falls back to this replica's share of the
// rate and reports it; traffic keeps flowing.
func TestRedisKilledFailOpen(t *testing.T) {
	addr, kill := ownRedis(t)
	rdb := dial(t, addr)
	srv, hits := countingServer(t)
	var fallbacks atomic.Int64
	var lastFallback atomic.Pointer[error]
	limit := redis_rate.Limit{Rate: 40, Period: time.Second, Burst: 4}
	lim := New(rdb, limit, WithPrefix(prefix(t)), WithReplicas(4), WithTimeout(100*time.Millisecond))
	rt := ratelimit.NewTransport(srv.Client().Transport, ratelimit.WithSharedLimiter(lim),
		ratelimit.WithObserver(ratelimit.Observer{
			Fallback: func(_ context.Context, _ string, err error) {
				fallbacks.Add(1)
				lastFallback.Store(&err)
			},
		}))
	defer rt.CloseIdleConnections()

	// Redis up: the shared rate (40/s, burst 4).
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	errs := hammer(ctx, rt, srv.URL, 4)
	cancel()
	for _, err := range errs {
		t.Error(err)
	}
	up := hits.Load()
	if fallbacks.Load() != 0 {
		t.Fatalf("%d fallbacks while Redis was up", fallbacks.Load())
	}

	kill()
	// Redis down: 1/4 of the rate locally (10/s, burst 1), reported.
	ctx, cancel = context.WithTimeout(context.Background(), time.Second)
	errs = hammer(ctx, rt, srv.URL, 4)
	cancel()
	for _, err := range errs {
		t.Errorf("fail open must not fail requests: %v", err)
	}
	down := hits.Load() - up
	t.Logf("Redis up: %d requests in 0.5 s (shared 40/s burst 4); Redis killed: %d requests in 1 s (local share 10/s burst 1), %d fallbacks reported",
		up, down, fallbacks.Load())
	if up < 15 || up > 30 {
		t.Fatalf("with Redis up the server saw %d requests in 0.5 s; want 15..30", up)
	}
	if down < 7 || down > 14 {
		t.Fatalf("with Redis down the server saw %d requests in 1 s; want 7..14 (local share 10/s)", down)
	}
	if fallbacks.Load() == 0 {
		t.Fatal("fallback not reported to the observer")
	}
	if err := *lastFallback.Load(); !strings.HasPrefix(err.Error(), "redisrate: ") {
		t.Fatalf("fallback cause %q", err)
	}
}

// Killing Redis mid-test: fail closed refuses every request with ErrLimited,
// without sending it, closing its body.
func TestRedisKilledFailClosed(t *testing.T) {
	addr, kill := ownRedis(t)
	rdb := dial(t, addr)
	srv, hits := countingServer(t)
	lim := New(rdb, redis_rate.PerSecond(100), WithPrefix(prefix(t)), WithFailureMode(FailClosed),
		WithTimeout(100*time.Millisecond), WithRetryInterval(time.Second))
	rt := ratelimit.NewTransport(srv.Client().Transport, ratelimit.WithSharedLimiter(lim))
	defer rt.CloseIdleConnections()

	send := func() (time.Duration, *closeBody, error) {
		b := &closeBody{Reader: strings.NewReader("x")}
		req, _ := http.NewRequest(http.MethodPost, srv.URL, b)
		start := time.Now()
		resp, err := rt.RoundTrip(req)
		took := time.Since(start)
		if err == nil {
			resp.Body.Close()
		} else if resp != nil {
			t.Fatal("response returned with an error")
		}
		return took, b, err
	}
	if _, _, err := send(); err != nil {
		t.Fatalf("with Redis up: %v", err)
	}
	kill()
	// The first request asks Redis, and waits at most the timeout; the next
	// ones, within the retry interval, are refused without asking.
	for i := range 3 {
		took, b, err := send()
		var le *ratelimit.LimitError
		if !errors.As(err, &le) || !errors.Is(err, ratelimit.ErrLimited) || le.Reason != ratelimit.ReasonRate || le.Err == nil {
			t.Fatalf("#%d with Redis down: %v; want a *LimitError (ErrLimited) with reason rate wrapping the Redis error", i, err)
		}
		if !b.closed.Load() {
			t.Fatalf("#%d: request body not closed", i)
		}
		t.Logf("#%d refused in %v: %v", i, took, err)
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("#%d: %v matches context.DeadlineExceeded, but the caller's context has no deadline", i, err)
		}
		if i == 0 && took > 500*time.Millisecond {
			t.Fatalf("first refusal took %v; want about the 100ms timeout at most", took)
		}
		if i > 0 && took > 50*time.Millisecond {
			t.Fatalf("#%d refusal took %v; want it at once within the retry interval", i, took)
		}
	}
	if got := hits.Load(); got != 1 {
		t.Fatalf("server saw %d requests; want 1 (refused ones must not be sent)", got)
	}
}

// The Limiter alone: GCRA answers allowed, then retry-after.
func TestAllowAndRetryAfter(t *testing.T) {
	rdb := sharedRedis(t)
	lim := New(rdb, redis_rate.Limit{Rate: 1, Period: time.Minute, Burst: 2}, WithPrefix(prefix(t)))
	ctx := context.Background()
	for i := range 2 {
		res, err := lim.Allow(ctx, "k")
		if err != nil || !res.Allowed || res.Fallback != nil {
			t.Fatalf("#%d: (%+v, %v); want allowed", i, res, err)
		}
	}
	res, err := lim.Allow(ctx, "k")
	if err != nil || res.Allowed || res.RetryAfter <= 50*time.Second || res.RetryAfter > time.Minute {
		t.Fatalf("third: (%+v, %v); want refused with RetryAfter about 1m", res, err)
	}
	// Another key has its own limit.
	if res, err := lim.Allow(ctx, "other"); err != nil || !res.Allowed {
		t.Fatalf("other key: (%+v, %v); want allowed", res, err)
	}
	// A canceled context is the caller's error, not a Redis failure.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := lim.Allow(cctx, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v; want context.Canceled", err)
	}
	if lim.downUntil.Load() != 0 {
		t.Fatal("a canceled caller marked Redis as down")
	}
}

type closeBody struct {
	io.Reader
	closed atomic.Bool
}

func (b *closeBody) Close() error { b.closed.Store(true); return nil }

func TestOptionPanics(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	for name, f := range map[string]func(){
		"nil client":           func() { New(nil, redis_rate.PerSecond(1)) },
		"zero limit":           func() { New(rdb, redis_rate.Limit{}) },
		"WithReplicas(0)":      func() { WithReplicas(0) },
		"WithTimeout(0)":       func() { WithTimeout(0) },
		"WithRetryInterval(0)": func() { WithRetryInterval(0) },
		"WithMaxKeys(0)":       func() { WithMaxKeys(0) },
		"WithFailureMode(7)":   func() { WithFailureMode(7) },
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.HasPrefix(fmt.Sprint(r), "redisrate: ") {
					t.Errorf("%s: panic %v; want a redisrate: message", name, r)
				}
			}()
			f()
		}()
	}
}
