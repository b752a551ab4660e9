package outbound

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// rateLimitServer answers the first request with a 429 carrying hdr and
// every later one with 200, and records when each request arrived.
type rateLimitServer struct {
	*httptest.Server
	mu       sync.Mutex
	arrivals []time.Time
}

func newRateLimitServer(t *testing.T, hdr http.Header) *rateLimitServer {
	s := &rateLimitServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.arrivals = append(s.arrivals, time.Now())
		first := len(s.arrivals) == 1
		s.mu.Unlock()
		if first {
			for k, vv := range hdr {
				w.Header()[k] = vv
			}
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.Header().Set("RateLimit-Policy", `"default";q=100;w=60`)
		w.Header().Set("RateLimit", `"default";r=99;t=60`)
	}))
	t.Cleanup(s.Close)
	return s
}

// gap is the time between the server's first and second requests.
func (s *rateLimitServer) gap(t *testing.T) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.arrivals) != 2 {
		t.Fatalf("server saw %d requests; want 2", len(s.arrivals))
	}
	return s.arrivals[1].Sub(s.arrivals[0])
}

// TestNewClientRateLimitField: the standard stack honours the RateLimit field
// of draft-ietf-httpapi-ratelimit-headers-11 on a 429 without Retry-After: the
// upstream is paused for t seconds, so a later call waits (the POST that got
// the 429 is not retried, so the GET after it is the next request the server
// sees). Retry-After takes precedence; a malformed field changes nothing.
func TestNewClientRateLimitField(t *testing.T) {
	tests := []struct {
		name     string
		hdr      http.Header
		min, max time.Duration
	}{
		{"r=0;t=1 pauses the upstream for 1s",
			http.Header{"Ratelimit": {`"default";r=0;t=1`}, "Ratelimit-Policy": {`"default";q=100;w=60`}},
			time.Second, 5 * time.Second},
		{"the policy that ran out decides",
			http.Header{"Ratelimit": {`"daily";r=900;t=36000, "burst";r=0;t=1`}},
			time.Second, 5 * time.Second},
		// With the 30 s of RateLimit the pause would outlast the 10 s
		// budget and the GET would be refused at once.
		{"Retry-After wins",
			http.Header{"Retry-After": {"1"}, "Ratelimit": {`"default";r=0;t=30`}},
			time.Second, 5 * time.Second},
		{"malformed field changes nothing",
			http.Header{"Ratelimit": {`"default";r=0;t=x`}, "Ratelimit-Policy": {`"default";q=`}},
			0, 900 * time.Millisecond},
		{"field of an older draft changes nothing",
			http.Header{"Ratelimit": {`limit=100, remaining=0, reset=30`}},
			0, 900 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRateLimitServer(t, tt.hdr)
			client, err := NewClient(DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			defer client.CloseIdleConnections()

			resp, err := client.Post(srv.URL+"/orders", "text/plain", strings.NewReader("x"))
			if err != nil {
				t.Fatalf("POST: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("POST: status %d; want 429 (not retried)", resp.StatusCode)
			}

			resp, err = client.Get(srv.URL + "/orders/1")
			if err != nil {
				t.Fatalf("GET after the 429: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET: status %d; want 200", resp.StatusCode)
			}
			if g := srv.gap(t); g < tt.min || g >= tt.max {
				t.Errorf("the GET reached the server %v after the 429; want in [%v, %v)", g, tt.min, tt.max)
			}
		})
	}
}
