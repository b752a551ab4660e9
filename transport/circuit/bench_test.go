package circuit

import (
	"net/http"
	"testing"

	"github.com/outboundhttp/outbound/internal/contracttest"
)

// memBase answers every request with a prebuilt 200 and http.NoBody.
type memBase struct{}

func (memBase) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
}

func benchRoundTrip(b *testing.B, rt http.RoundTripper) {
	req, _ := http.NewRequest(http.MethodGet, "http://bench.example/x", nil)
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

// BenchmarkBase is the bare in-memory base: the baseline for the others.
func BenchmarkBase(b *testing.B) { benchRoundTrip(b, memBase{}) }

// BenchmarkClosed is the cost of the breaker in the closed state (the common
// case): key, LRU lookup, Allow, outcome report.
func BenchmarkClosed(b *testing.B) { benchRoundTrip(b, NewTransport(memBase{})) }

// BenchmarkClosedParallel is the same with every core sending to one upstream,
// all contending for its breaker.
func BenchmarkClosedParallel(b *testing.B) {
	tr := NewTransport(memBase{})
	req, _ := http.NewRequest(http.MethodGet, "http://bench.example/x", nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := tr.RoundTrip(req)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
		}
	})
}

// BenchmarkOpen is the cost of a refusal while open.
func BenchmarkOpen(b *testing.B) {
	tr := NewTransport(contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 503, Body: http.NoBody}, nil
	}), WithMinRequests(1), WithBreakDuration(1<<62))
	req, _ := http.NewRequest(http.MethodGet, "http://bench.example/x", nil)
	tr.RoundTrip(req)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := tr.RoundTrip(req); err == nil {
			b.Fatal("not open")
		}
	}
}
