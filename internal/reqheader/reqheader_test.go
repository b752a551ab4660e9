package reqheader

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
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

func BenchmarkWith(b *testing.B) {
	req := httptest.NewRequest("GET", "http://a.test/", nil)
	req.Header = http.Header{"Accept": {"application/json"}, "User-Agent": {"x"}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		With(req, ctx, "X-Request-Id", "id")
	}
}
