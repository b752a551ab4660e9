package requestid

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/outboundhttp/outbound/internal/body"
	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/internal/contracttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// seen is what a fake base observed for one request.
type seen struct {
	header string
	ctxID  string
}

// recorder is a base RoundTripper that records the header and context ID of
// every request and answers 200 with an empty body.
type recorder struct {
	mu   sync.Mutex
	got  []seen
	name string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	id, _ := FromContext(req.Context())
	name := r.name
	if name == "" {
		name = DefaultHeader
	}
	r.mu.Lock()
	r.got = append(r.got, seen{header: req.Header.Get(name), ctxID: id})
	r.mu.Unlock()
	body.CloseRequest(req)
	return &http.Response{StatusCode: 200, Body: http.NoBody, Request: req}, nil
}

// retrying is a fake inner layer that sends every request n times, as a retry
// layer would (a fresh shallow copy per attempt, the response of all but the
// last attempt discarded).
func retrying(n int) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper {
		return contracttest.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			var resp *http.Response
			var err error
			for i := range n {
				r := req.Clone(callctx.WithAttempt(req.Context(), i))
				resp, err = next.RoundTrip(r)
				if i < n-1 && err == nil {
					resp.Body.Close()
				}
			}
			return resp, err
		})
	}
}

func newReq(t testing.TB, ctx context.Context) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://upstream.test/v1/x?q=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestSameIDOnEveryAttempt(t *testing.T) {
	base := &recorder{}
	rt := Middleware()(retrying(3)(base))
	resp, err := rt.RoundTrip(newReq(t, context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(base.got) != 3 {
		t.Fatalf("base saw %d attempts; want 3", len(base.got))
	}
	first := base.got[0].header
	if _, err := uuid.Parse(first); err != nil {
		t.Fatalf("generated ID %q is not a UUID: %v", first, err)
	}
	for i, s := range base.got {
		if s.header != first || s.ctxID != first {
			t.Errorf("attempt %d: header %q, context %q; want both %q", i, s.header, s.ctxID, first)
		}
	}
	// A second logical call gets a different ID.
	resp, err = rt.RoundTrip(newReq(t, context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := base.got[3].header; got == first {
		t.Errorf("second call reused ID %q", got)
	}
}

func TestPrecedence(t *testing.T) {
	noGen := WithGenerator(func() string { t.Error("generator called"); return "gen" })
	tests := []struct {
		name   string
		header string
		ctxID  string
		opts   []Option
		want   string
	}{
		{"header wins over context", "from-header", "from-ctx", []Option{noGen}, "from-header"},
		{"header alone", "from-header", "", []Option{noGen}, "from-header"},
		{"header equals context", "same", "same", []Option{noGen}, "same"},
		{"context wins over generation", "", "from-ctx", []Option{noGen}, "from-ctx"},
		{"generated", "", "", []Option{WithGenerator(func() string { return "gen-1" })}, "gen-1"},
		{"empty generator result falls back", "", "", []Option{WithGenerator(func() string { return "" })}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := &recorder{}
			ctx := context.Background()
			if tt.ctxID != "" {
				ctx = NewContext(ctx, tt.ctxID)
			}
			req := newReq(t, ctx)
			if tt.header != "" {
				req.Header.Set(DefaultHeader, tt.header)
			}
			resp, err := NewTransport(base, tt.opts...).RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := base.got[0]
			want := tt.want
			if want == "" { // fallback UUIDv4
				if _, err := uuid.Parse(got.header); err != nil {
					t.Fatalf("header %q; want a UUID", got.header)
				}
				want = got.header
			}
			if got.header != want || got.ctxID != want {
				t.Errorf("header %q, context %q; want both %q", got.header, got.ctxID, want)
			}
		})
	}
}

func TestCallerRequestNotModified(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header string
		ctxID  string
	}{
		{"generate", "", ""},
		{"from context", "", "ctx-id"},
		{"header only", "hdr-id", ""},
		{"header and other context", "hdr-id", "ctx-id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.ctxID != "" {
				ctx = NewContext(ctx, tc.ctxID)
			}
			req := newReq(t, ctx)
			req.Header.Add("Accept", "a")
			req.Header.Add("Accept", "b")
			req.Header["Nil"] = nil
			if tc.header != "" {
				req.Header.Set(DefaultHeader, tc.header)
			}
			before := req.Header.Clone()
			beforeURL := *req.URL
			// When the Transport sets the header, it passes on its own copy:
			// even an inner layer that (wrongly) writes to the request it
			// got must not reach the caller's. When the caller set the
			// header, the header map is passed on as is (the inner layer
			// must not modify it, per the RoundTripper contract).
			inner := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
				if tc.header == "" {
					r.Header.Add("Accept", "c")
					r.Header.Set("X-Inner", "1")
					r.Header.Set(DefaultHeader, "changed")
				}
				return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
			})
			resp, err := NewTransport(inner).RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if !reflect.DeepEqual(req.Header, before) {
				t.Errorf("caller's header changed: got %v; want %v", req.Header, before)
			}
			if *req.URL != beforeURL {
				t.Errorf("caller's URL changed: got %v; want %v", req.URL, &beforeURL)
			}
			if req.Context() != ctx {
				t.Error("caller's context replaced")
			}
		})
	}
}

func TestHeaderCopyKeepsOtherHeaders(t *testing.T) {
	var got http.Header
	inner := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		got = r.Header
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	})
	req := newReq(t, context.Background())
	req.Header.Add("Accept", "a")
	req.Header.Add("Accept", "b")
	req.Header.Set("Authorization", "Bearer x")
	req.Header["Nil"] = nil
	req.Header.Set(DefaultHeader, "") // present but empty: replaced
	resp, err := NewTransport(inner, WithGenerator(func() string { return "g" })).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := http.Header{"Accept": {"a", "b"}, "Authorization": {"Bearer x"}, "Nil": nil, "X-Request-Id": {"g"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("inner header %v; want %v", got, want)
	}
}

func TestNilHeader(t *testing.T) {
	base := &recorder{}
	req := newReq(t, context.Background())
	req.Header = nil
	resp, err := NewTransport(base).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if base.got[0].header == "" || base.got[0].header != base.got[0].ctxID {
		t.Errorf("got %+v; want a generated ID in header and context", base.got[0])
	}
}

func TestCustomHeader(t *testing.T) {
	base := &recorder{name: "Correlation-Id"}
	req := newReq(t, context.Background())
	req.Header.Set("correlation-id", "c-1")
	resp, err := NewTransport(base, WithHeader("correlation-ID")).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if g := base.got[0]; g.header != "c-1" || g.ctxID != "c-1" {
		t.Errorf("got %+v; want c-1 in both", g)
	}
}

func TestWithHeaderPanics(t *testing.T) {
	for _, name := range []string{"", "X Request", "X-Req\r\n", "Ünicode"} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.HasPrefix(r.(string), "requestid: WithHeader(") {
					t.Errorf("WithHeader(%q): recover() = %v; want a requestid panic", name, r)
				}
			}()
			WithHeader(name)
		}()
	}
}

func TestUUIDv7Generator(t *testing.T) {
	base := &recorder{}
	rt := NewTransport(base, WithGenerator(UUIDv7))
	for range 2 {
		resp, err := rt.RoundTrip(newReq(t, context.Background()))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	a, err := uuid.Parse(base.got[0].header)
	if err != nil || a.Version() != 7 {
		t.Fatalf("ID %q: version %v, err %v; want a version 7 UUID", base.got[0].header, a.Version(), err)
	}
	if base.got[0].header >= base.got[1].header {
		t.Errorf("v7 IDs not increasing: %q then %q", base.got[0].header, base.got[1].header)
	}
}

func TestErrorAndResponsePassThrough(t *testing.T) {
	wantErr := errors.New("boom")
	rt := NewTransport(contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		body.CloseRequest(r)
		return nil, wantErr
	}))
	req, _ := http.NewRequest(http.MethodPost, "http://x.test/", strings.NewReader("payload"))
	closed := &closeTracker{Reader: strings.NewReader("payload")}
	req.Body = closed
	resp, err := rt.RoundTrip(req)
	if resp != nil || !errors.Is(err, wantErr) {
		t.Errorf("got (%v, %v); want (nil, %v)", resp, err, wantErr)
	}
	if !closed.closed {
		t.Error("request body not closed")
	}
}

type closeTracker struct {
	io.Reader
	closed bool
}

func (c *closeTracker) Close() error { c.closed = true; return nil }

// CloseIdleConnections is checked by the contract suite (contract_test.go).
func TestNilNext(t *testing.T) {
	if NewTransport(nil).next != http.DefaultTransport {
		t.Error("nil next is not http.DefaultTransport")
	}
	if Middleware()(nil).(*Transport).next != http.DefaultTransport {
		t.Error("Middleware: nil next is not http.DefaultTransport")
	}
}

func TestSpanAttribute(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	defer tp.Shutdown(context.Background())

	ctx, span := tp.Tracer("test").Start(context.Background(), "caller")
	req := newReq(t, NewContext(ctx, "abc-1"))
	resp, err := NewTransport(&recorder{}, WithSpanAttribute()).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	span.End()

	// Without the option, nothing is set.
	ctx, span = tp.Tracer("test").Start(context.Background(), "plain")
	resp, _ = NewTransport(&recorder{}).RoundTrip(newReq(t, ctx))
	resp.Body.Close()
	span.End()

	// Handler, with a custom header.
	h := Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), WithSpanAttribute(), WithHeader("Correlation-ID"))
	ctx, span = tp.Tracer("test").Start(context.Background(), "server")
	r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
	r.Header.Set("Correlation-ID", "in-1")
	h.ServeHTTP(httptest.NewRecorder(), r)
	span.End()

	spans := sr.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans; want 3", len(spans))
	}
	check := func(i int, key, want string) {
		t.Helper()
		for _, kv := range spans[i].Attributes() {
			if string(kv.Key) == key {
				if got := kv.Value.AsStringSlice(); len(got) != 1 || got[0] != want {
					t.Errorf("span %q: %s = %v; want [%s]", spans[i].Name(), key, got, want)
				}
				return
			}
		}
		if want != "" {
			t.Errorf("span %q: no attribute %s; got %v", spans[i].Name(), key, spans[i].Attributes())
		}
	}
	check(0, DefaultSpanAttribute, "abc-1")
	if attrs := spans[1].Attributes(); len(attrs) != 0 {
		t.Errorf("span without option has attributes %v", attrs)
	}
	check(2, "http.request.header.correlation-id", "in-1")
}

// The pooled generator makes well-formed version 4 UUIDs, all distinct, from
// many goroutines at once, and sets every one of the 122 random bits both
// ways (a stuck bit would make IDs guessable).
func TestUUIDv4(t *testing.T) {
	const goroutines, each = 8, 500
	var mu sync.Mutex
	seenIDs := make(map[string]bool, goroutines*each)
	var ones, zeros [16]byte
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				s := UUIDv4()
				u, err := uuid.Parse(s)
				if err != nil || len(s) != 36 || u.Version() != 4 || u.Variant() != uuid.RFC4122 {
					t.Errorf("UUIDv4() = %q (version %v, variant %v, err %v); want a version 4 RFC 9562 UUID", s, u.Version(), u.Variant(), err)
					return
				}
				mu.Lock()
				if seenIDs[s] {
					t.Errorf("UUIDv4() returned %q twice", s)
				}
				seenIDs[s] = true
				for i, b := range u {
					ones[i] |= b
					zeros[i] |= ^b
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for i := range 16 {
		fixedOnes, fixedZeros := byte(0), byte(0)
		switch i {
		case 6:
			fixedOnes, fixedZeros = 0x40, 0xb0 // version 0100
		case 8:
			fixedOnes, fixedZeros = 0x80, 0x40 // variant 10
		}
		if ones[i]|fixedZeros != 0xff || zeros[i]|fixedOnes != 0xff {
			t.Errorf("byte %d: bits never set %08b, never clear %08b", i, ^(ones[i] | fixedZeros), ^(zeros[i] | fixedOnes))
		}
	}
}

func BenchmarkUUIDv4(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			UUIDv4()
		}
	})
}
