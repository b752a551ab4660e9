package upstream

import (
	"net/http"
	"testing"
)

func TestCache(t *testing.T) {
	c := Cache{Max: 2}
	for _, u := range []string{
		"https://API.example.com/a", "https://api.example.com:443/b", "http://api.example.com/",
		"http://[::1]:8080/", "https://API.example.com/c", "http://other/",
	} {
		req, _ := http.NewRequest("GET", u, nil)
		if got, want := c.Key(req), Key(req); got != want {
			t.Errorf("key(%s) = %q; want %q", u, got, want)
		}
		if len(*c.m.Load()) > 2 {
			t.Fatalf("cache holds %d entries; want at most 2", len(*c.m.Load()))
		}
	}
	// A request with no URL host uses req.Host, as upstream.Key does.
	req, _ := http.NewRequest("GET", "http://a.example/", nil)
	req.URL.Host, req.Host = "", "b.example"
	if got, want := c.Key(req), Key(req); got != want {
		t.Errorf("key with req.Host = %q; want %q", got, want)
	}
}
