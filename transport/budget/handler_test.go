package budget

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outboundhttp/outbound/internal/contracttest"
)

func TestParseMillis(t *testing.T) {
	tests := []struct {
		in   []string
		want time.Duration
		ok   bool
	}{
		{[]string{"0"}, 0, true},
		{[]string{"1"}, time.Millisecond, true},
		{[]string{"2500"}, 2500 * time.Millisecond, true},
		{[]string{"0000000300"}, 300 * time.Millisecond, true},
		{[]string{"9999999999"}, 9999999999 * time.Millisecond, true},
		{[]string{"10000000000"}, 0, false}, // 11 digits
		{[]string{"-5"}, 0, false},
		{[]string{"+5"}, 0, false},
		{[]string{"1e30"}, 0, false},
		{[]string{"1.5"}, 0, false},
		{[]string{"abc"}, 0, false},
		{[]string{" 5"}, 0, false},
		{[]string{"5ms"}, 0, false},
		{[]string{"0x10"}, 0, false},
		{[]string{"١٢"}, 0, false}, // non-ASCII digits
		{[]string{strings.Repeat("9", 10240)}, 0, false},
		{[]string{""}, 0, false},
		{[]string{"5", "6"}, 0, false},
		{nil, 0, false},
	}
	for _, tt := range tests {
		got, ok := parseMillis(tt.in)
		if got != tt.want || ok != tt.ok {
			name := strings.Join(tt.in, ",")
			if len(name) > 20 {
				name = name[:20] + "..."
			}
			t.Errorf("parseMillis(%q) = (%v, %v); want (%v, %v)", name, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzParseMillis(f *testing.F) {
	for _, s := range []string{"0", "300", "-5", "1e30", "abc", "9999999999", "10000000000", strings.Repeat("1", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := parseMillis([]string{s})
		if !ok {
			if d != 0 {
				t.Fatalf("rejected %q but returned %v", s, d)
			}
			return
		}
		if d < 0 || d > 9999999999*time.Millisecond || d%time.Millisecond != 0 {
			t.Fatalf("parseMillis(%q) = %v: out of range", s, d)
		}
		if len(s) == 0 || len(s) > maxHeaderDigits || strings.Trim(s, "0123456789") != "" {
			t.Fatalf("accepted %q", s)
		}
		// Round trip: the value PropagateTransport would send parses back.
		back, ok := parseMillis([]string{formatMillis(d)})
		if !ok || back != d {
			t.Fatalf("round trip of %v: (%v, %v)", d, back, ok)
		}
	})
}

func formatMillis(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

func TestHandlerSetsDeadline(t *testing.T) {
	tests := []struct {
		name   string
		header []string
		opts   []Option
		want   time.Duration // 0: no deadline
	}{
		{"value", []string{"300"}, nil, 300 * time.Millisecond},
		{"zero", []string{"0"}, nil, 0}, // deadline now: checked below
		{"above default max", []string{"60000"}, nil, DefaultTotal},
		{"above explicit max", []string{"5000"}, []Option{WithMaxInbound(2 * time.Second)}, 2 * time.Second},
		{"max follows total", []string{"5000"}, []Option{WithTotal(3 * time.Second)}, 3 * time.Second},
		{"custom header", []string{"700"}, []Option{WithDeadlineHeader("x-envoy-expected-rq-timeout-ms")}, 700 * time.Millisecond},
		{"negative", []string{"-5"}, nil, -1},
		{"1e30", []string{"1e30"}, nil, -1},
		{"abc", []string{"abc"}, nil, -1},
		{"10 KB", []string{strings.Repeat("9", 10<<10)}, nil, -1},
		{"repeated", []string{"100", "200"}, nil, -1},
		{"absent", nil, nil, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now() // the bubble's clock stands still while nothing waits
				var dl time.Time
				var has bool
				var cause error
				h := Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					dl, has = r.Context().Deadline()
					cause = context.Cause(r.Context())
				}), tt.opts...)
				r := httptest.NewRequest(http.MethodGet, "/", nil)
				name := "Request-Timeout-Ms"
				if tt.name == "custom header" {
					name = "X-Envoy-Expected-Rq-Timeout-Ms"
				}
				if tt.header != nil {
					r.Header[name] = tt.header
				}
				h.ServeHTTP(httptest.NewRecorder(), r)
				if tt.want < 0 {
					if has {
						t.Errorf("deadline set to start+%v from a value that must be ignored", dl.Sub(start))
					}
					return
				}
				if !has || !dl.Equal(start.Add(tt.want)) {
					t.Errorf("deadline start+%v (set %v); want start+%v", dl.Sub(start), has, tt.want)
				}
				if tt.want == 0 {
					if ee, ok := cause.(*ExhaustedError); !ok || ee.Budget != 0 {
						t.Errorf("cause %v; want the budget's", cause)
					}
				}
			})
		})
	}
}

func TestHandlerKeepsEarlierDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		want, _ := ctx.Deadline()
		var got time.Time
		h := Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got, _ = r.Context().Deadline() }))
		r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
		r.Header.Set(DefaultDeadlineHeader, "5000")
		h.ServeHTTP(httptest.NewRecorder(), r)
		if !got.Equal(want) {
			t.Errorf("deadline %v; want the earlier %v", got, want)
		}
	})
}

func TestPropagateHeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var sent []string
		base := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			sent = append(sent, strings.Join(r.Header.Values(DefaultDeadlineHeader), ","))
			return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
		})
		p := NewDeadlineTransport(base)
		ctx, cancel := context.WithDeadline(context.Background(), start.Add(1000*time.Millisecond))
		defer cancel()

		send := func(ctx context.Context, hdr string) {
			t.Helper()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://x.test/", nil)
			if hdr != "" {
				req.Header.Set(DefaultDeadlineHeader, hdr)
			}
			resp, err := p.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		send(ctx, "")                          // 1000 - 5 margin
		time.Sleep(300*time.Millisecond + 400) // 699.9996 - 5, truncated
		send(ctx, "")
		time.Sleep(time.Until(start.Add(998 * time.Millisecond))) // below the margin
		send(ctx, "")
		time.Sleep(time.Until(start.Add(2 * time.Second))) // passed
		send(ctx, "")
		send(ctx, "42")                // the caller's value wins
		send(context.Background(), "") // no deadline, no header
		want := []string{"995", "694", "0", "0", "42", ""}
		if strings.Join(sent, "|") != strings.Join(want, "|") {
			t.Errorf("sent %q; want %q", sent, want)
		}

		sent = nil
		ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(1000*time.Millisecond))
		defer cancel()
		p = NewDeadlineTransport(base, WithSafetyMargin(0), WithDeadlineHeader("X-Budget"))
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://x.test/", nil)
		var got string
		p.next = contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			got = r.Header.Get("X-Budget")
			return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
		})
		resp, _ := p.RoundTrip(req)
		resp.Body.Close()
		if got != "1000" {
			t.Errorf("custom header, no margin: sent %q; want 1000", got)
		}
	})
}
