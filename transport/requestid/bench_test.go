package requestid

import (
	"context"
	"net/http"
	"testing"

	"github.com/google/uuid"
)

// base is an in-memory RoundTripper returning a prebuilt response.
type base struct{ resp *http.Response }

func (b base) RoundTrip(*http.Request) (*http.Response, error) { return b.resp, nil }

func newBase() base {
	return base{resp: &http.Response{StatusCode: 200, Body: http.NoBody, Header: http.Header{}}}
}

func benchReq(b *testing.B, ctx context.Context, header string) *http.Request {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://upstream.test/v1/users/7", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "bench")
	if header != "" {
		req.Header.Set(DefaultHeader, header)
	}
	return req
}

func run(b *testing.B, rt http.RoundTripper, req *http.Request) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rt.RoundTrip(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBase is the bare in-memory base: the baseline of every ratio.
func BenchmarkBase(b *testing.B) {
	run(b, newBase(), benchReq(b, context.Background(), ""))
}

// BenchmarkUUIDNewString is the bare cost of the ID string itself.
func BenchmarkUUIDNewString(b *testing.B) {
	b.ReportAllocs()
	var s string
	for b.Loop() {
		s = uuid.NewString()
	}
	_ = s
}

func BenchmarkTransport(b *testing.B) {
	ctx := context.Background()
	idCtx := NewContext(ctx, "0a8e89e5-474d-4eb7-a54d-0a631376bb75")
	const id = "0a8e89e5-474d-4eb7-a54d-0a631376bb75"
	b.Run("generate", func(b *testing.B) {
		run(b, NewTransport(newBase()), benchReq(b, ctx, ""))
	})
	b.Run("generate_v7", func(b *testing.B) {
		run(b, NewTransport(newBase(), WithGenerator(UUIDv7)), benchReq(b, ctx, ""))
	})
	b.Run("from_context", func(b *testing.B) {
		run(b, NewTransport(newBase()), benchReq(b, idCtx, ""))
	})
	b.Run("caller_header", func(b *testing.B) {
		run(b, NewTransport(newBase()), benchReq(b, ctx, id))
	})
	b.Run("header_and_context", func(b *testing.B) {
		run(b, NewTransport(newBase()), benchReq(b, idCtx, id))
	})
}

func BenchmarkHandler(b *testing.B) {
	h := Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	w := nopWriter{h: http.Header{}}
	b.Run("valid_inbound", func(b *testing.B) {
		r := benchReq(b, context.Background(), "0a8e89e5-474d-4eb7-a54d-0a631376bb75")
		b.ReportAllocs()
		for b.Loop() {
			h.ServeHTTP(w, r)
		}
	})
	b.Run("no_inbound", func(b *testing.B) {
		r := benchReq(b, context.Background(), "")
		b.ReportAllocs()
		for b.Loop() {
			h.ServeHTTP(w, r)
		}
	})
}

type nopWriter struct{ h http.Header }

func (w nopWriter) Header() http.Header       { return w.h }
func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (nopWriter) WriteHeader(int)             {}
