package bench

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/outboundhttp/outbound/transport/budget"
	"github.com/outboundhttp/outbound/transport/circuit"
	"github.com/outboundhttp/outbound/transport/ratelimit"
	"github.com/outboundhttp/outbound/transport/requestid"
)

// refusalCase is a layer in the state in which it refuses a call locally,
// and the request it refuses.
type refusalCase struct {
	name  string
	build func(tb testing.TB) (http.RoundTripper, *http.Request)
	is    error // what the refusal matches
}

// stackRequest is the benchmark request as a layer inside the standard
// stack receives it: with the call's request ID and budget deadline in its
// context.
func stackRequest(tb testing.TB, ctx context.Context) *http.Request {
	req := newBenchRequest(tb)
	return req.WithContext(requestid.NewContext(ctx, "0190b5d2-7c4e-7d3a-9c1f-5b2e8a6f4d10"))
}

func refusalCases() []refusalCase {
	far, cancel := context.WithTimeout(context.Background(), time.Hour)
	_ = cancel // lives as long as the benchmark binary
	return []refusalCase{
		{"circuit-open", func(tb testing.TB) (http.RoundTripper, *http.Request) {
			// DefaultConfig's breaker, tripped by one failure and kept open.
			rt := circuit.NewTransport(roundTripFunc(func(r *http.Request) (*http.Response, error) {
				return &http.Response{StatusCode: 503, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
			}), circuit.WithMinRequests(1), circuit.WithBreakDuration(time.Hour))
			req := stackRequest(tb, far)
			if resp, err := rt.RoundTrip(req); err == nil {
				resp.Body.Close()
			}
			return rt, req
		}, circuit.ErrOpen},
		{"limit-full", func(tb testing.TB) (http.RoundTripper, *http.Request) {
			// One slot, held by a response whose body is never closed, and
			// no queue: every other call is refused at once.
			rt := ratelimit.NewTransport(newMemBaseWithBody(), ratelimit.WithConcurrency(1), ratelimit.WithQueue(0))
			req := stackRequest(tb, far)
			if _, err := rt.RoundTrip(req); err != nil {
				tb.Fatal(err)
			}
			return rt, req
		}, ratelimit.ErrLimited},
		{"budget-exhausted", func(tb testing.TB) (http.RoundTripper, *http.Request) {
			// Less left (the caller's hour) than the least worth sending
			// with: scaled up from DefaultMinRemaining's 10 ms so that no
			// pause of a loaded machine between two clock reads can let a
			// request through.
			rt := budget.NewTransport(newMemBase(), budget.WithTotal(3*time.Hour), budget.WithMinRemaining(2*time.Hour))
			return rt, stackRequest(tb, far)
		}, budget.ErrExhausted},
	}
}

// BenchmarkRefusal is the cost of a call refused locally by the layer that
// refuses it, as it sits in the stack (the request carries the call's ID and
// deadline): an open breaker, a full concurrency limit, a spent budget.
// Everything above that layer costs what it costs on the success path.
func BenchmarkRefusal(b *testing.B) {
	for _, c := range refusalCases() {
		b.Run(c.name, func(b *testing.B) {
			rt, req := c.build(b)
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				if _, err := rt.RoundTrip(req); err == nil {
					b.Fatal("not refused")
				}
			}
			cpu.report(b)
		})
	}
}

// TestRefusalCasesRefuse checks that every refusal benchmark measures a
// refusal of the kind it names.
func TestRefusalCasesRefuse(t *testing.T) {
	for _, c := range refusalCases() {
		t.Run(c.name, func(t *testing.T) {
			rt, req := c.build(t)
			for range 3 {
				resp, err := rt.RoundTrip(req)
				if !errors.Is(err, c.is) {
					t.Fatalf("RoundTrip = %v, %v; want an error matching %v", resp, err, c.is)
				}
			}
		})
	}
}

// newMemBaseWithBody is newMemBase with a body that stays open until closed,
// so a concurrency slot stays held.
func newMemBaseWithBody() http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("held")), Header: http.Header{}, Request: r}, nil
	})
}
