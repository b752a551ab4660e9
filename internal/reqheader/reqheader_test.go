package reqheader

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type key struct{}

func TestWith(t *testing.T) {
	req := httptest.NewRequest("GET", "http://a.test/", nil)
	req.Header = http.Header{"Accept": {"a", "b"}, "X-Request-Id": {"old"}, "X-Nil": nil}
	before := req.Header.Clone()
	ctx := context.WithValue(context.Background(), key{}, 1)

	r2 := With(req, ctx, "X-Request-Id", "new")
	if !reflect.DeepEqual(req.Header, before) || req.Context() == ctx {
		t.Fatalf("caller's request modified: %v", req.Header)
	}
	want := http.Header{"Accept": {"a", "b"}, "X-Request-Id": {"new"}, "X-Nil": nil}
	if !reflect.DeepEqual(r2.Header, want) || r2.Context() != ctx {
		t.Fatalf("copy has %v; want %v", r2.Header, want)
	}
	// Appending to a copied value must not reach the caller's array.
	r2.Header["Accept"] = append(r2.Header["Accept"], "c")
	r2.Header.Set("X-Request-Id", "changed")
	if !reflect.DeepEqual(req.Header, before) {
		t.Fatalf("changing the copy changed the caller's header: %v", req.Header)
	}
	// A request without a header gets one.
	bare := &http.Request{Method: "GET"}
	if got := With(bare, ctx, "X-A", "1").Header.Get("X-A"); got != "1" {
		t.Fatalf("header of a bare request = %q", got)
	}
}

func TestCopy(t *testing.T) {
	req := httptest.NewRequest("GET", "http://a.test/", nil)
	req.Header = http.Header{"Accept": {"a"}, "User-Agent": {"caller"}}
	before := req.Header.Clone()
	ua := []string{"outbound"}
	r2 := Copy(req, req.Context(), Field{"User-Agent", ua}, Field{"Authorization", []string{"Bearer t"}})
	want := http.Header{"Accept": {"a"}, "User-Agent": {"outbound"}, "Authorization": {"Bearer t"}}
	if !reflect.DeepEqual(r2.Header, want) || !reflect.DeepEqual(req.Header, before) {
		t.Fatalf("copy %v, caller %v; want %v and the caller's unchanged", r2.Header, req.Header, want)
	}
	// The shared values are clipped: Add on the copy writes a new array.
	r2.Header.Add("User-Agent", "more")
	r2.Header.Add("Accept", "b")
	if len(ua) != 1 || cap(ua) != 1 || !reflect.DeepEqual(req.Header, before) {
		t.Fatalf("Add on the copy reached shared values: %v %v", ua, req.Header)
	}
	// The request and the map, nothing else (fields built once, as the
	// layers do).
	f := Field{"X-Request-Id", []string{"id"}}
	if n := testing.AllocsPerRun(100, func() { Copy(req, req.Context(), f) }); n > 3 {
		t.Errorf("Copy allocates %v times; want at most 3", n)
	}
}

func BenchmarkWith(b *testing.B) {
	req := httptest.NewRequest("GET", "http://a.test/", nil)
	req.Header = http.Header{"Accept": {"application/json"}, "User-Agent": {"x"}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		With(req, ctx, "X-Request-Id", "id")
	}
}

// Copy keeps every key and value, shares no spare capacity with the
// caller's slices, and sets the fields, whether the caller's header is
// small enough to be cloned whole or not.
func TestCopySizes(t *testing.T) {
	for _, n := range []int{0, 1, 5, 6, 7, 8, 12} {
		req := httptest.NewRequest("GET", "http://a.test/", nil)
		req.Header = http.Header{}
		for i := range n {
			req.Header.Add("X-K"+strconv.Itoa(i), "a")
		}
		if n > 0 {
			req.Header.Add("X-K0", "b") // a slice with spare capacity
			req.Header["X-Nil"] = nil
		}
		before := req.Header.Clone()
		r2 := Copy(req, context.Background(), Field{"X-Request-Id", []string{"id"}}, Field{"User-Agent", []string{"ua"}})
		want := before.Clone()
		want["X-Request-Id"] = []string{"id"}
		want["User-Agent"] = []string{"ua"}
		if !reflect.DeepEqual(r2.Header, want) {
			t.Fatalf("%d keys: copy %v; want %v", n, r2.Header, want)
		}
		for k, vv := range r2.Header {
			if cap(vv) != len(vv) {
				t.Errorf("%d keys: %s has capacity %d past its length %d: an Add on the copy would write into the caller's array", n, k, cap(vv), len(vv))
			}
		}
		r2.Header.Add("X-K0", "c")
		if !reflect.DeepEqual(req.Header, before) {
			t.Fatalf("%d keys: caller's header changed to %v", n, req.Header)
		}
	}
}

// BenchmarkCopy: the copy of a request's header with two fields set, for
// headers the size of a bare call's, an SDK's, and past a small map's eight
// keys.
func BenchmarkCopy(b *testing.B) {
	for _, n := range []int{1, 6, 12} {
		req := httptest.NewRequest("GET", "http://a.test/", nil)
		req.Header = http.Header{}
		for i := range n {
			req.Header.Set("X-K"+strconv.Itoa(i), "a")
		}
		fs := []Field{{"X-Request-Id", []string{"id"}}, {"User-Agent", []string{"ua"}}}
		b.Run(strconv.Itoa(n)+"-keys", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Copy(req, context.Background(), fs...)
			}
		})
	}
}
