package hedge_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/outboundhttp/outbound/transport/hedge"
)

// memBase answers every request with a prebuilt 200 and no body (two
// allocations of its own: the response and its header).
type memBase struct{}

func (memBase) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r, Header: http.Header{}}, nil
}

func benchRT(b *testing.B, rt http.RoundTripper, method string) {
	req, _ := http.NewRequest(method, "http://api.example.com/v1/things", nil)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := rt.RoundTrip(req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatal(resp, err)
		}
		resp.Body.Close()
	}
}

// bodyBase is memBase with a body of 2 bytes (one allocation more: the
// body), so that the hedge layer has a body to wrap.
type bodyBase struct{}

func (bodyBase) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("ok")), Request: r, Header: http.Header{}}, nil
}

// BenchmarkFastPath: the fast path, a response before the delay, against
// next alone. "armed" has a hedge scheduled for every call (a fixed delay),
// "quantile" is the default once the upstream's latency is known (a hedge
// scheduled, and the latency recorded), "not-hedgeable" a POST that passes
// through; the "body" pair answers with a body, which the hedge layer wraps
// (in the call's own allocation) to release the attempt's context on Close.
func BenchmarkFastPath(b *testing.B) {
	b.Run("next", func(b *testing.B) { benchRT(b, memBase{}, http.MethodGet) })
	b.Run("armed", func(b *testing.B) {
		benchRT(b, hedge.NewTransport(memBase{}, hedge.WithDelay(time.Hour)), http.MethodGet)
	})
	b.Run("quantile", func(b *testing.B) { benchRT(b, hedge.NewTransport(memBase{}), http.MethodGet) })
	b.Run("not-hedgeable", func(b *testing.B) { benchRT(b, hedge.NewTransport(memBase{}), http.MethodPost) })
	b.Run("next-body", func(b *testing.B) { benchRT(b, bodyBase{}, http.MethodGet) })
	b.Run("armed-body", func(b *testing.B) {
		benchRT(b, hedge.NewTransport(bodyBase{}, hedge.WithDelay(time.Hour)), http.MethodGet)
	})
}
