package bench

import (
	"net/http"
	"testing"
)

// BenchmarkParallel is the success path with every core sending to one
// upstream at once (RunParallel), bare and through
// NewClient(DefaultConfig()). make bench runs it at -cpu 1,2: with no lock
// or contended cache line shared by all calls to one upstream, the per-call
// cost at 2 CPUs is about half that at 1, as it is for the bare base.
func BenchmarkParallel(b *testing.B) {
	for _, c := range []struct {
		name  string
		build func(http.RoundTripper) http.RoundTripper
	}{
		{"bare", func(b http.RoundTripper) http.RoundTripper { return b }},
		{"default", Default},
	} {
		b.Run(c.name, func(b *testing.B) {
			rt := c.build(newMemBase())
			req := newBenchRequest(b)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := rt.RoundTrip(req)
					if err != nil || resp.StatusCode != 200 {
						b.Error(resp, err)
						return
					}
					resp.Body.Close()
				}
			})
		})
	}
}
