package header_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/outboundhttp/outbound/internal/contracttest"
	"github.com/outboundhttp/outbound/transport/budget"
	"github.com/outboundhttp/outbound/transport/header"
	"github.com/outboundhttp/outbound/transport/hedge"
	"github.com/outboundhttp/outbound/transport/requestid"
	"github.com/outboundhttp/outbound/transport/retry"
	"github.com/outboundhttp/outbound/transport/tracing"
)

// presetStack is the standard order from the request-ID layer down to the
// header layer, built with opts. between, when not nil, wraps the header layer in a
// middleware that does not forward PresetHeaders, which ends the preset.
func presetStack(base http.RoundTripper, between func(http.RoundTripper) http.RoundTripper, opts ...header.Option) http.RoundTripper {
	var rt http.RoundTripper = header.NewTransport(base, opts...)
	if between != nil {
		rt = between(rt)
	}
	rt = hedge.NewTransport(rt)
	rt = retry.NewTransport(rt)
	rt = budget.NewTransport(rt)
	rt = tracing.NewTransport(rt)
	return requestid.NewTransport(rt)
}

func passThrough(next http.RoundTripper) http.RoundTripper {
	return contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) { return next.RoundTrip(r) })
}

// The request-ID layer sets the header layer's static fields on the copy it
// makes anyway, so the header layer sends it on without a copy of its own:
// the same fields reach the wire, the caller's own values still win, the
// caller's request is untouched, and the stack allocates less.
func TestPresetHeadersSetByRequestIDLayer(t *testing.T) {
	base, seen := echoHeaders()
	for _, between := range []func(http.RoundTripper) http.RoundTripper{nil, passThrough} {
		rt := presetStack(base, between, header.WithHeader("User-Agent", "svc/1"), header.WithBearerToken("tok-1"))

		req := httptest.NewRequest("GET", "http://api.test/", nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := seen.Get("User-Agent"); got != "svc/1" {
			t.Errorf("preset %v: User-Agent = %q; want svc/1", between == nil, got)
		}
		if got := seen.Get("Authorization"); got != "Bearer tok-1" {
			t.Errorf("preset %v: Authorization = %q; want Bearer tok-1", between == nil, got)
		}
		if seen.Get("X-Request-ID") == "" {
			t.Errorf("preset %v: no X-Request-ID", between == nil)
		}
		if len(req.Header) != 0 {
			t.Errorf("preset %v: caller's request was modified: %v", between == nil, req.Header)
		}

		req = httptest.NewRequest("GET", "http://api.test/", nil)
		req.Header.Set("User-Agent", "caller/9")
		resp, err = rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := seen.Values("User-Agent"); len(got) != 1 || got[0] != "caller/9" {
			t.Errorf("preset %v: User-Agent = %q; want the caller's [caller/9]", between == nil, got)
		}
		if len(req.Header) != 1 {
			t.Errorf("preset %v: caller's request was modified: %v", between == nil, req.Header)
		}
	}

	// A header value that PresetHeaders handed out is a copy: changing it
	// changes nothing the Transport sends.
	ht := header.NewTransport(base, header.WithHeader("User-Agent", "svc/1"))
	ht.PresetHeaders()["User-Agent"][0] = "changed"
	if got := ht.PresetHeaders().Get("User-Agent"); got != "svc/1" {
		t.Errorf("after changing a returned value: PresetHeaders User-Agent = %q; want svc/1", got)
	}
}

func TestPresetHeadersSaveTheHeaderLayersCopy(t *testing.T) {
	base := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
	})
	allocs := func(rt http.RoundTripper) float64 {
		req := httptest.NewRequest("GET", "http://api.test/", nil)
		return testing.AllocsPerRun(200, func() {
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		})
	}
	// Credentials are never preset (they are per attempt), so only a
	// static field is set here.
	ua := header.WithHeader("User-Agent", "svc/1")
	with, without := allocs(presetStack(base, nil, ua)), allocs(presetStack(base, passThrough, ua))
	// The header layer's copy is a request and a header map.
	if with > without-2 {
		t.Errorf("allocations per call: %v with the preset, %v without; want at least 2 fewer with it", with, without)
	}
	t.Logf("allocations per call: %v with the preset, %v without", with, without)
}
