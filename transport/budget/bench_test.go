package budget

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// base is an in-memory RoundTripper returning a fresh response with
// http.NoBody (so the budget's context is released at once, as for a
// response whose body the caller has finished).
type base struct{}

func (base) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
}

func benchReq(b *testing.B, ctx context.Context) *http.Request {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://upstream.test/v1/users/7", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "bench")
	return req
}

func run(b *testing.B, rt http.RoundTripper, req *http.Request) {
	b.ReportAllocs()
	for b.Loop() {
		resp, err := rt.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}

// BenchmarkBase is the bare in-memory base: the baseline of every ratio.
func BenchmarkBase(b *testing.B) {
	run(b, base{}, benchReq(b, context.Background()))
}

func BenchmarkTransport(b *testing.B) {
	b.Run("own_deadline", func(b *testing.B) {
		run(b, NewTransport(base{}), benchReq(b, context.Background()))
	})
	b.Run("parent_deadline_first", func(b *testing.B) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		run(b, NewTransport(base{}, WithTotal(2*time.Hour)), benchReq(b, ctx))
	})
	b.Run("with_propagate", func(b *testing.B) {
		run(b, NewTransport(NewDeadlineTransport(base{})), benchReq(b, context.Background()))
	})
}

func BenchmarkPropagate(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	run(b, NewDeadlineTransport(base{}), benchReq(b, ctx))
}

func BenchmarkHandler(b *testing.B) {
	h := Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	r := benchReq(b, context.Background())
	r.Header.Set(DefaultDeadlineHeader, "2500")
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(nil, r)
	}
}
