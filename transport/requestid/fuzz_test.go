package requestid

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzValid checks Valid against a plain restatement of the rule and checks
// that Handler never echoes a value Valid rejects.
func FuzzValid(f *testing.F) {
	for _, s := range []string{"", "a", "0a8e89e5-474d-4eb7-a54d-0a631376bb75", "a\r\nb", "a b",
		strings.Repeat("x", 128), strings.Repeat("x", 129), "ид", "a\x00", "svc:1/2+3=4_5.6"} {
		f.Add(s)
	}
	const set = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._:/+="
	h := Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
		WithGenerator(func() string { return "fresh" }))
	f.Fuzz(func(t *testing.T, s string) {
		want := len(s) >= 1 && len(s) <= MaxLen
		for i := 0; i < len(s) && want; i++ {
			want = strings.IndexByte(set, s[i]) >= 0
		}
		if got := Valid(s); got != want {
			t.Fatalf("Valid(%q) = %v; want %v", s, got, want)
		}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header["X-Request-Id"] = []string{s}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		got := w.Header().Get(DefaultHeader)
		if want && got != s || !want && got != "fresh" {
			t.Fatalf("inbound %q: response header %q", s, got)
		}
	})
}
