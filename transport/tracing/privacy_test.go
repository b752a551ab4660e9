package tracing

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/outboundhttp/outbound/internal/contracttest"
)

const secretURL = "https://alice:hunter2@api.example.com/v1/items?api_key=SECRETKEY&page=77#TOKENFRAG"

var secrets = []string{"alice", "hunter2", "SECRETKEY", "77", "TOKENFRAG", "BEARERTOKEN", "COOKIEVAL", "HEADERKEY"}

func secretRequest(t *testing.T) *http.Request {
	t.Helper()
	req, err := http.NewRequest("GET", secretURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer BEARERTOKEN")
	req.Header.Set("Cookie", "sid=COOKIEVAL")
	req.Header.Set("X-API-Key", "HEADERKEY")
	return req
}

// everything returns every string recorded in spans (attributes, event
// attributes, status, names) and metric attributes.
func everything(t *testing.T, te *telemetry) []string {
	var out []string
	kvs := func(where string, kv []attribute.KeyValue) {
		for _, a := range kv {
			out = append(out, fmt.Sprintf("%s %s=%s", where, a.Key, a.Value.String()))
		}
	}
	for _, s := range te.spans.Ended() {
		where := "span " + s.Name()
		out = append(out, where, s.Status().Description)
		kvs(where, s.Attributes())
		for _, ev := range s.Events() {
			out = append(out, ev.Name)
			kvs(where+" event "+ev.Name, ev.Attributes)
		}
	}
	for name, m := range te.metrics(t) {
		forEachAttrSet(m, func(s attribute.Set) { kvs("metric "+name, s.ToSlice()) })
	}
	return out
}

func TestPrivacy(t *testing.T) {
	for _, tc := range []struct {
		name string
		base http.RoundTripper
	}{
		{"response", contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) { return response(r, 200, "x"), nil })},
		{"error quoting the URL", contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			return nil, fmt.Errorf("proxy refused %s: %w", r.URL, errors.New("boom"))
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			te := newTelemetry(t)
			rt := chain(tc.base, Middleware(te.opts()...), testRetry(1, nil), AttemptMiddleware(te.opts()...))
			req := secretRequest(t)
			resp, err := rt.RoundTrip(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			all := everything(t, te)
			for _, s := range all {
				for _, secret := range secrets {
					if strings.Contains(s, secret) {
						t.Errorf("recorded %q contains %q", s, secret)
					}
				}
			}
			var found bool
			for _, s := range te.spans.Ended() {
				if v, ok := attr(s, semconv.URLFullKey); ok {
					found = true
					if got, want := v.AsString(), "https://api.example.com/v1/items?api_key=REDACTED&page=REDACTED"; got != want {
						t.Errorf("url.full = %q; want %q", got, want)
					}
				}
			}
			if !found {
				t.Error("no span has url.full")
			}
		})
	}
}

func TestKeepQuery(t *testing.T) {
	te := newTelemetry(t)
	rt := NewAttemptTransport(contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) { return response(r, 200, ""), nil }),
		te.opts(WithRedactQuery(false))...)
	resp, err := rt.RoundTrip(secretRequest(t))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s := te.spans.Ended()[0]
	v, _ := attr(s, semconv.URLFullKey)
	// Userinfo is removed even then (by otelhttp); the query is kept.
	if got, want := v.AsString(), "https://api.example.com/v1/items?api_key=SECRETKEY&page=77#TOKENFRAG"; got != want {
		t.Errorf("url.full = %q; want %q", got, want)
	}
}

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://h/p", "https://h/p"},
		{"https://h/p?", "https://h/p?"},
		{"https://h/p?a=1", "https://h/p?a=REDACTED"},
		{"https://h/p?a=1&b=&c&d=x=y", "https://h/p?a=REDACTED&b=&c&d=REDACTED"},
		{"https://h/p?a=1#frag", "https://h/p?a=REDACTED"},
		{"https://h/p#frag?a=1", "https://h/p"},
		{"https://h/p?a=1&&b=2", "https://h/p?a=REDACTED&&b=REDACTED"},
	} {
		if got := redactURL(tc.in); got != tc.want {
			t.Errorf("redactURL(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{"https://h/p?a=1&b=2", "http://h?x", "?=&=#", "https://h/p#f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, u string) {
		got := redactURL(u)
		base, _, _ := strings.Cut(u, "#")
		base, q, hasQ := strings.Cut(base, "?")
		if !strings.HasPrefix(got, base) {
			t.Fatalf("redactURL(%q) = %q lost the part before the query", u, got)
		}
		if !hasQ {
			if got != base {
				t.Fatalf("redactURL(%q) = %q; want %q", u, got, base)
			}
			return
		}
		for _, pair := range strings.Split(q, "&") {
			if _, v, ok := strings.Cut(pair, "="); ok && v != "" && strings.Contains(got[len(base):], "="+v) && v != "REDACTED" && !strings.HasPrefix("REDACTED", v) {
				t.Fatalf("redactURL(%q) = %q still has value %q", u, got, v)
			}
		}
	})
}

func TestScrubText(t *testing.T) {
	for _, tc := range []struct {
		in     string
		redact bool
		want   string
	}{
		{"no url here", true, "no url here"},
		{`Get "https://u:p@h/p?a=1": EOF`, true, `Get "https://h/p?a=REDACTED": EOF`},
		{`Get "https://u:p@h/p?a=1": EOF`, false, `Get "https://h/p?a=1": EOF`},
		{"a http://h?x=1 and ftp://me@h2/x#f end", true, "a http://h?x=REDACTED and ftp://h2/x end"},
		{"https://h/p@x?q=1", true, "https://h/p@x?q=REDACTED"},
		{"://u@h", true, "://h"},
	} {
		if got := scrubText(tc.in, tc.redact); got != tc.want {
			t.Errorf("scrubText(%q, %v) = %q; want %q", tc.in, tc.redact, got, tc.want)
		}
	}
}
