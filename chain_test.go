package outbound

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"
)

func recordingMiddleware(name string, order *[]string) Middleware {
	return func(next http.RoundTripper) http.RoundTripper {
		return RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
			*order = append(*order, name)
			return next.RoundTrip(r)
		})
	}
}

// orderBase is a pointer type so tests can compare RoundTrippers with ==.
type orderBase struct{ order *[]string }

func (b *orderBase) RoundTrip(r *http.Request) (*http.Response, error) {
	*b.order = append(*b.order, "base")
	return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r, Header: http.Header{}}, nil
}

func okBase(order *[]string) http.RoundTripper { return &orderBase{order} }

func TestChainOrderFirstIsOutermost(t *testing.T) {
	var order []string
	rt := Chain(okBase(&order), recordingMiddleware("a", &order), nil, recordingMiddleware("b", &order), recordingMiddleware("c", &order))
	req := httptest.NewRequest("GET", "http://example.test/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := []string{"a", "b", "c", "base"}; !reflect.DeepEqual(order, want) {
		t.Fatalf("order = %v; want %v", order, want)
	}
}

func TestChainNoMiddlewareReturnsBase(t *testing.T) {
	var order []string
	base := okBase(&order)
	if got := Chain(base); got != base {
		t.Fatalf("Chain(base) = %T; want base itself", got)
	}
	if got := Chain(nil); got != http.DefaultTransport {
		t.Fatalf("Chain(nil) = %v; want http.DefaultTransport", got)
	}
	if got := Chain(nil, nil, nil); got != http.DefaultTransport {
		t.Fatalf("Chain(nil, nil, nil) = %v; want http.DefaultTransport", got)
	}
}

func TestWrapLeavesOriginalUntouched(t *testing.T) {
	jar, _ := cookiejar.New(nil)
	var order []string
	base := okBase(&order)
	redirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	orig := &http.Client{Transport: base, Timeout: 3 * time.Second, Jar: jar, CheckRedirect: redirect}
	before := *orig

	wrapped := Wrap(orig, recordingMiddleware("a", &order))
	if wrapped == orig {
		t.Fatal("Wrap returned the same client")
	}
	if orig.Transport != before.Transport || orig.Timeout != before.Timeout || orig.Jar != before.Jar {
		t.Fatal("Wrap modified the original client")
	}
	if wrapped.Timeout != orig.Timeout || wrapped.Jar != orig.Jar || wrapped.CheckRedirect == nil {
		t.Fatalf("Wrap lost settings: %+v", wrapped)
	}
	resp, err := wrapped.Get("http://example.test/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := []string{"a", "base"}; !reflect.DeepEqual(order, want) {
		t.Fatalf("order = %v; want %v", order, want)
	}

	// Through the original client, the middleware is not used.
	order = nil
	resp, err = orig.Get("http://example.test/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := []string{"base"}; !reflect.DeepEqual(order, want) {
		t.Fatalf("original client order = %v; want %v", order, want)
	}
}

func TestWrapNilClient(t *testing.T) {
	c := Wrap(nil)
	if c == nil || c.Transport != http.DefaultTransport || c.Timeout != 0 {
		t.Fatalf("Wrap(nil) = %+v; want zero client on http.DefaultTransport", c)
	}
}

func TestRoundTripperFuncOverSockets(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.Header.Get("X-Layer")))
	}))
	defer srv.Close()
	addHeader := func(next http.RoundTripper) http.RoundTripper {
		return RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
			r2 := r.Clone(r.Context())
			r2.Header.Set("X-Layer", "added")
			return next.RoundTrip(r2)
		})
	}
	c := Wrap(srv.Client(), addHeader)
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "added" {
		t.Fatalf("server saw X-Layer %q; want %q", b, "added")
	}
	srv.Client().CloseIdleConnections()
}

func passThrough(next http.RoundTripper) http.RoundTripper {
	return RoundTripperFunc(func(r *http.Request) (*http.Response, error) { return next.RoundTrip(r) })
}

type memBase struct{ resp http.Response }

func (m *memBase) RoundTrip(r *http.Request) (*http.Response, error) { return &m.resp, nil }

// BenchmarkChain shows the cost of Chain itself: 8 pass-through middlewares
// over an in-memory base, against the bare base in the same run.
func BenchmarkChain(b *testing.B) {
	base := &memBase{resp: http.Response{StatusCode: 200, Body: http.NoBody, Header: http.Header{}}}
	req := httptest.NewRequest("GET", "http://example.test/", nil)
	b.Run("base", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			base.RoundTrip(req)
		}
	})
	b.Run("chain8", func(b *testing.B) {
		mws := make([]Middleware, 8)
		for i := range mws {
			mws[i] = passThrough
		}
		rt := Chain(base, mws...)
		b.ReportAllocs()
		for b.Loop() {
			rt.RoundTrip(req)
		}
	})
}
