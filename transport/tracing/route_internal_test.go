package tracing

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/outboundhttp/outbound/internal/callctx"
)

func TestSpanNameCache(t *testing.T) {
	var names nameCache
	req := httptest.NewRequest("GET", "http://a.test/v1/users/7", nil)
	if got := spanName(req, &names); got != "GET" {
		t.Fatalf("no route: %q; want GET", got)
	}
	req = req.WithContext(callctx.WithRoute(context.Background(), "/v1/users/{id}"))
	first := spanName(req, &names)
	if first != "GET /v1/users/{id}" {
		t.Fatalf("with route: %q", first)
	}
	if allocs := testing.AllocsPerRun(100, func() { spanName(req, &names) }); allocs != 0 {
		t.Fatalf("cached name allocates %v times; want 0", allocs)
	}
	odd := httptest.NewRequest("BREW", "http://a.test/", nil)
	odd = odd.WithContext(req.Context())
	if got := spanName(odd, &names); got != "HTTP /v1/users/{id}" {
		t.Fatalf("unknown method: %q", got)
	}
	// Beyond the bound names stay correct, only uncached.
	for i := 0; i < maxNames+10; i++ {
		r := req.WithContext(callctx.WithRoute(context.Background(), "/r/"+string(rune('a'+i%26))+string(rune('a'+i/26%26))+string(rune('a'+i/676))))
		if got := spanName(r, &names); got[:4] != "GET " {
			t.Fatalf("name %q", got)
		}
	}
	if n := len(*names.names.Load()); n != maxNames {
		t.Fatalf("cache holds %d names; want %d, the bound", n, maxNames)
	}
}
