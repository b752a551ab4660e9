package ratelimit

import (
	"net/http"
	"testing"
)

// baseRT is an in-memory RoundTripper returning a prebuilt empty response.
type baseRT struct{}

func (baseRT) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}

func benchRT(b *testing.B, rt http.RoundTripper) {
	req, _ := http.NewRequest(http.MethodGet, "http://api.example.com/v1/x", nil)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := rt.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}

func benchParallel(b *testing.B, rt http.RoundTripper) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req, _ := http.NewRequest(http.MethodGet, "http://api.example.com/v1/x", nil)
		for pb.Next() {
			resp, err := rt.RoundTrip(req)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
		}
	})
}

// The no-wait path: limits high enough never to make a request wait.
func BenchmarkRoundTrip(b *testing.B) {
	for _, bc := range []struct {
		name string
		rt   http.RoundTripper
	}{
		{"base", baseRT{}},
		{"pushback-only", NewTransport(baseRT{})},
		{"rate", NewTransport(baseRT{}, WithRate(1e12, 1<<30))},
		{"concurrency", NewTransport(baseRT{}, WithConcurrency(1<<20))},
		{"rate+concurrency", NewTransport(baseRT{}, WithRate(1e12, 1<<30), WithConcurrency(1<<20))},
		{"concurrency-100", NewTransport(baseRT{}, WithConcurrency(100))},
		{"adaptive-4-100", NewTransport(baseRT{}, WithAdaptiveConcurrency(4, 100))},
	} {
		b.Run(bc.name, func(b *testing.B) { benchRT(b, bc.rt) })
		b.Run(bc.name+"/parallel", func(b *testing.B) { benchParallel(b, bc.rt) })
	}
}
