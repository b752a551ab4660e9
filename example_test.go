package outbound_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"github.com/outboundhttp/outbound"
	"github.com/outboundhttp/outbound/transport/base"
)

// tag returns a middleware that appends name to the X-Layers header of a
// clone of the request, to show the order in which layers run.
func tag(name string) outbound.Middleware {
	return func(next http.RoundTripper) http.RoundTripper {
		return outbound.RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
			r2 := r.Clone(r.Context())
			r2.Header.Add("X-Layers", name)
			return next.RoundTrip(r2)
		})
	}
}

func ExampleChain() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Header.Values("X-Layers"))
	}))
	defer upstream.Close()

	// The first middleware is the outermost: it sees the request first.
	rt := outbound.Chain(http.DefaultTransport, tag("outer"), tag("middle"), tag("inner"))
	req, _ := http.NewRequest("GET", upstream.URL, nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Println(string(b))
	// Output: [outer middle inner]
}

func ExampleWrap() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Header.Values("X-Layers"))
	}))
	defer upstream.Close()

	existing := &http.Client{Timeout: 30 * time.Second}
	client := outbound.Wrap(existing, tag("added"))

	resp, err := client.Get(upstream.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Println(string(b), client.Timeout, existing.Transport == nil)
	// Output: [added] 30s true
}

func ExampleNewTransport() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello")
	}))
	defer upstream.Close()

	base := base.New(
		base.WithConnectTimeout(time.Second),
		base.WithResponseHeaderTimeout(3*time.Second),
		base.WithBodyIdleTimeout(5*time.Second),
	)
	client := &http.Client{Transport: base}
	defer client.CloseIdleConnections()

	resp, err := client.Get(upstream.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(b))
	// Output: 200 hello
}

func ExampleCheckResponse() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3")
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	defer upstream.Close()

	resp, err := http.Get(upstream.URL + "/v1/users/7?token=secret")
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := outbound.CheckResponse(resp); err != nil {
		var se *outbound.StatusError
		fmt.Println(errors.As(err, &se), se.StatusCode, se.RetryAfter, se.URL == upstream.URL+"/v1/users/7")
	}
	http.DefaultClient.CloseIdleConnections()
	// Output: true 503 3s true
}

func ExampleLoadConfig() {
	// In production these come from the process environment.
	cfg, err := outbound.LoadConfig("EXAMPLE_UNSET_PREFIX_")
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg.APIKey = "sk-live-123"
	fmt.Println(cfg.TotalBudget, cfg.MaxAttempts, cfg.APIKey)
	// Output: 10s 4 [REDACTED]
}

func ExampleNewClient() {
	var attempts atomic.Int32
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if attempts.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable) // transient
			return
		}
		fmt.Fprint(w, `{"id":7}`)
	}))
	defer upstream.Close()

	cfg := outbound.DefaultConfig()
	cfg.BackoffInitial = 10 * time.Millisecond // keep the example quick
	cfg.TracingEnabled = false
	client, err := outbound.NewClient(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.CloseIdleConnections()

	resp, err := client.Get(upstream.URL + "/v1/users/7")
	if err != nil {
		fmt.Println(outbound.StatusFor(err), err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(b), "after", attempts.Load(), "attempts")
	// Output: 200 {"id":7} after 3 attempts
}

func ExamplePerHost() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Header.Values("X-Layers"))
	}))
	defer upstream.Close()
	host := strings.TrimPrefix(upstream.URL, "http://")

	client := outbound.Wrap(http.DefaultClient, outbound.PerHost(map[string]outbound.Middleware{
		host: tag("stack-for-this-upstream"),
	}, tag("fallback-stack")))

	for _, u := range []string{upstream.URL, "http://localhost:" + upstream.URL[strings.LastIndex(upstream.URL, ":")+1:]} {
		resp, err := client.Get(u)
		if err != nil {
			fmt.Println(err)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(string(b))
	}
	http.DefaultClient.CloseIdleConnections()
	// Output:
	// [stack-for-this-upstream]
	// [fallback-stack]
}
