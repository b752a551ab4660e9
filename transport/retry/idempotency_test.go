package retry

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
)

// quotedUUID is an Idempotency-Key as the draft writes it: an sf-string
// holding a UUID.
var quotedUUID = regexp.MustCompile(`^"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"$`)

// TestIdempotencyKeys: POST and PATCH get one key per call, the same on
// every attempt and a new one on the next call; a key the caller set is
// sent as it is; other methods get none.
func TestIdempotencyKeys(t *testing.T) {
	for _, tc := range []struct {
		name      string
		method    string
		callerKey string
		opts      []Option
		wantKey   string // "" none, "new" a fresh quoted UUID, else this value
		attempts  int
	}{
		{"POST", http.MethodPost, "", nil, "new", 3},
		{"PATCH", http.MethodPatch, "", nil, "new", 3},
		{"POST with the caller's key", http.MethodPost, "order-42", nil, "order-42", 3},
		{"PATCH with the caller's key", http.MethodPatch, `"abc"`, nil, `"abc"`, 3},
		{"POST made retryable by WithMethods", http.MethodPost, "", []Option{WithMethods("POST")}, "new", 3},
		{"GET", http.MethodGet, "", nil, "", 3},
		{"PUT", http.MethodPut, "", nil, "", 3},
		{"DELETE", http.MethodDelete, "", nil, "", 3},
		{"a method of unknown meaning", "PURGE", "", nil, "", 1},
		{"the deprecated name", http.MethodPost, "", []Option{WithIdempotencyKey()}, "new", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				base := &scripted{statuses: []int{503, 503, 200}}
				opts := append([]Option{WithIdempotencyKeys()}, tc.opts...)
				rt := NewTransport(base, opts...)
				var keys []string
				for call := range 2 { // the second call meets no failure
					before := base.count()
					req := mustRequest(t, context.Background(), tc.method, testURL, strings.NewReader("payload"))
					if tc.callerKey != "" {
						req.Header.Set(IdempotencyKeyHeader, tc.callerKey)
					}
					resp, err := rt.RoundTrip(req)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					if got := base.count() - before; call == 0 && got != tc.attempts {
						t.Fatalf("attempts = %d; want %d", got, tc.attempts)
					}
					if got := req.Header.Values(IdempotencyKeyHeader); tc.callerKey == "" && len(got) != 0 {
						t.Fatalf("the caller's request got a key: %q", got)
					}
					sent := base.reqs[before:]
					k := sent[0].Header.Get(IdempotencyKeyHeader)
					for i, r := range sent {
						if got := r.Header.Values(IdempotencyKeyHeader); len(got) > 1 || r.Header.Get(IdempotencyKeyHeader) != k {
							t.Errorf("call %d attempt %d: key %q; want %q, once", call, i, got, k)
						}
					}
					switch tc.wantKey {
					case "":
						if k != "" {
							t.Errorf("call %d: got key %q; want none", call, k)
						}
						if tc.method == http.MethodGet && sent[0] != req {
							t.Errorf("GET: the first attempt was a copy; nothing needed changing")
						}
					case "new":
						if !quotedUUID.MatchString(k) {
							t.Errorf("call %d: key %q; want a quoted UUID", call, k)
						}
					default:
						if k != tc.wantKey {
							t.Errorf("call %d: key %q; want the caller's %q", call, k, tc.wantKey)
						}
					}
					keys = append(keys, k)
				}
				if tc.wantKey == "new" && keys[0] == keys[1] {
					t.Errorf("two calls sent the same key %q", keys[0])
				}
			})
		})
	}
}

// TestIdempotencyKeysOff: without the option a POST gets no key and is not
// repeated after it may have reached the server.
func TestIdempotencyKeysOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := &scripted{statuses: []int{503, 200}}
		rt := NewTransport(base)
		resp, err := rt.RoundTrip(mustRequest(t, context.Background(), http.MethodPost, testURL, strings.NewReader("x")))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if base.count() != 1 || base.reqs[0].Header.Get(IdempotencyKeyHeader) != "" {
			t.Fatalf("%d attempts, key %q; want 1 attempt and no key", base.count(), base.reqs[0].Header.Get(IdempotencyKeyHeader))
		}
	})
}
