package header_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"

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

// A layer between never sees a field preset that it reads or sets: each
// forwarder leaves its own fields out, so a static field reaches them only
// where the header layer below would set it, after them.
func TestPresetLeavesOutWhatLayersBetweenRead(t *testing.T) {
	base, _ := echoHeaders()
	static := header.NewTransport(base, header.WithHeader("User-Agent", "svc/1"), header.WithHeader("Idempotency-Key", "static"),
		header.WithHeader("Upgrade", "h2c"), header.WithHeader("X-Attempt", "9"), header.WithHeader("Request-Timeout-Ms", "99999"),
		header.WithHeader("Authorization", "Basic zzz"), header.WithTokenSource(func(context.Context) (string, error) { return "tok", nil }))
	for _, c := range []struct {
		name  string
		layer interface{ PresetHeaders() http.Header }
		gone  []string
	}{
		{"header, with a token source", static, []string{"Authorization"}},
		{"retry", retry.NewTransport(static, retry.WithAttemptHeader("X-Attempt")), []string{"Idempotency-Key", "X-Attempt"}},
		{"hedge", hedge.NewTransport(static), []string{"Idempotency-Key", "Upgrade"}},
		{"deadline", budget.NewDeadlineTransport(static, budget.WithDeadlineHeader("Request-Timeout-Ms")), []string{"Request-Timeout-Ms"}},
	} {
		got := c.layer.PresetHeaders()
		for _, k := range c.gone {
			if _, ok := got[k]; ok {
				t.Errorf("%s: PresetHeaders has %s; want it left out", c.name, k)
			}
		}
		if got.Get("User-Agent") != "svc/1" {
			t.Errorf("%s: PresetHeaders = %v; want User-Agent svc/1 kept", c.name, got)
		}
	}
}

// The same stack sends the same request with and without the preset: a
// static Idempotency-Key does not make a POST retryable above the header
// layer, and a token source still beats a static Authorization.
func TestPresetSendsWhatTheHeaderLayerSends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := []header.Option{header.WithHeader("User-Agent", "svc/1"), header.WithHeader("Idempotency-Key", "static"),
			header.WithHeader("Authorization", "Basic zzz"), header.WithTokenSource(func(context.Context) (string, error) { return "tok", nil })}
		for _, between := range []func(http.RoundTripper) http.RoundTripper{nil, passThrough} {
			var attempts int
			var auth string
			base := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
				attempts++
				auth = r.Header.Get("Authorization")
				return &http.Response{StatusCode: 503, Body: http.NoBody, Request: r}, nil
			})
			req := httptest.NewRequest("POST", "http://api.test/", nil)
			resp, err := presetStack(base, between, opts...).RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if attempts != 1 || auth != "Bearer tok" {
				t.Errorf("preset %v: %d attempts with Authorization %q; want 1 (a POST with no key of the caller's) with Bearer tok",
					between == nil, attempts, auth)
			}
		}
	})
}
