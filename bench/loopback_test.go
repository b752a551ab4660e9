package bench

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/outboundhttp/outbound"
)

// loopbackServer answers every request with a small 200 over a real loopback
// socket, keep-alive on.
func loopbackServer(tb testing.TB) *httptest.Server {
	payload := []byte(`{"status":"ok"}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(payload)
	}))
	tb.Cleanup(srv.Close)
	return srv
}

// loopbackCall makes one call and reads the body to its end, so the
// connection goes back to the pool and per-request resources are released.
func loopbackCall(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = &statusError{resp.StatusCode}
	}
	return err
}

type statusError struct{ code int }

func (e *statusError) Error() string { return http.StatusText(e.code) }

// loopbackStacks are the clients compared by BenchmarkLoopback, each on its
// own base transport (outbound.NewTransport, the same options for all).
func loopbackStacks() []struct {
	name  string
	build func(base http.RoundTripper) http.RoundTripper
} {
	return []struct {
		name  string
		build func(base http.RoundTripper) http.RoundTripper
	}{
		{"bare", func(b http.RoundTripper) http.RoundTripper { return b }},
		{"stack", func(b http.RoundTripper) http.RoundTripper { return Standard(b, Unlimited) }},
		{"stack+tracing-noop", func(b http.RoundTripper) http.RoundTripper {
			return Traced(b, Unlimited, noopProviders().tracing()...)
		}},
	}
}

// BenchmarkLoopback measures keep-alive requests per second through the bare
// base transport and through outbound's stack against an in-process server,
// with 1 and 64 concurrent callers. ns/op is wall time per request across all
// callers, so bare/stack of ns/op is the throughput ratio.
func BenchmarkLoopback(b *testing.B) {
	srv := loopbackServer(b)
	for _, callers := range []int{1, 64} {
		for _, s := range loopbackStacks() {
			b.Run(s.name+"/callers="+itoa(callers), func(b *testing.B) {
				// Room for every caller's connection in the idle pool, so the
				// run measures keep-alive requests, not connection churn (the
				// default keeps 20 idle connections per host).
				base := outbound.NewTransport(outbound.WithMaxIdleConnsPerHost(Concurrency))
				defer base.(interface{ CloseIdleConnections() }).CloseIdleConnections()
				c := &http.Client{Transport: s.build(base)}
				// Warm the pool so connection setup is not measured.
				for range callers {
					if err := loopbackCall(c, srv.URL); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				b.ResetTimer()
				if callers == 1 {
					for b.Loop() {
						if err := loopbackCall(c, srv.URL); err != nil {
							b.Fatal(err)
						}
					}
				} else {
					// RunParallel starts parallelism×GOMAXPROCS goroutines.
					b.SetParallelism((callers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if err := loopbackCall(c, srv.URL); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			})
		}
	}
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
