package upstream

import (
	"net/http"
	"net/url"
	"testing"
)

func TestKey(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"https://API.Example.com/v1?x=1", "https://api.example.com:443"},
		{"https://api.example.com:443/", "https://api.example.com:443"},
		{"http://api.example.com/", "http://api.example.com:80"},
		{"http://127.0.0.1:8080/x", "http://127.0.0.1:8080"},
		{"http://[::1]/", "http://[::1]:80"},
		{"http://[::1]:9000/", "http://[::1]:9000"},
		{"https://user:pw@api.example.com/", "https://api.example.com:443"},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := Key(&http.Request{URL: u}); got != tc.want {
			t.Errorf("Key(%s) = %q; want %q", tc.url, got, tc.want)
		}
	}
	if got := Key(&http.Request{}); got != "" {
		t.Errorf("Key with nil URL = %q; want empty", got)
	}
	if got := Key(&http.Request{URL: &url.URL{Scheme: "http"}, Host: "h.test"}); got != "http://h.test:80" {
		t.Errorf("Key falls back to req.Host: got %q", got)
	}
}
