package outbound

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// counting returns a middleware that records its name per request and counts
// how many times it was applied (each application is a new Transport value).
func counting(name string, seen *[]string, instances *int) Middleware {
	return func(next http.RoundTripper) http.RoundTripper {
		*instances++
		return RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
			*seen = append(*seen, name)
			return next.RoundTrip(r)
		})
	}
}

func TestPerHostRoutes(t *testing.T) {
	var seen []string
	var instA, instB, instFallback int
	var order []string
	mw := PerHost(map[string]Middleware{
		"A.example.com":         counting("a", &seen, &instA),
		"b.example.com:8443":    counting("b", &seen, &instB),
		"nil-route.example.com": nil,
	}, counting("fallback", &seen, &instFallback))
	rt := mw(okBase(&order))
	for _, u := range []string{
		"https://a.example.com/x",
		"https://a.example.com:9999/x", // host name alone matches
		"https://b.example.com:8443/y",
		"https://b.example.com/y", // port differs from the route: fallback
		"https://nil-route.example.com/",
		"https://other.example.com/z",
	} {
		resp, err := rt.RoundTrip(httptest.NewRequest("GET", u, nil))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	want := []string{"a", "a", "b", "fallback", "fallback"}
	if len(seen) != len(want) {
		t.Fatalf("routes taken = %v; want %v", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("routes taken = %v; want %v", seen, want)
		}
	}
	if len(order) != 6 {
		t.Fatalf("base reached %d times; want 6", len(order))
	}
	if instA != 1 || instB != 1 || instFallback != 1 {
		t.Fatalf("middleware applied %d/%d/%d times; want once each", instA, instB, instFallback)
	}
}

func TestPerHostNilFallbackGoesToNext(t *testing.T) {
	var order []string
	rt := PerHost(nil, nil)(okBase(&order))
	resp, err := rt.RoundTrip(httptest.NewRequest("GET", "http://x.test/", nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(order) != 1 {
		t.Fatal("request did not reach next")
	}
}

func TestPerHostForwardsCloseIdleConnections(t *testing.T) {
	var closed bool
	rt := PerHost(nil, nil)(&idleRecorder{closed: &closed})
	rt.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	if !closed {
		t.Fatal("CloseIdleConnections not forwarded")
	}
}

type idleRecorder struct{ closed *bool }

func (i *idleRecorder) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, http.ErrNotSupported
}
func (i *idleRecorder) CloseIdleConnections() { *i.closed = true }
