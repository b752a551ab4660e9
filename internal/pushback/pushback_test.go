package pushback

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

// now is the instant of RFC 9110's example date minus 37 seconds.
var now = time.Date(1994, time.November, 6, 8, 49, 0, 0, time.UTC)

func TestParseRetryAfter(t *testing.T) {
	tests := []struct {
		v      string
		want   time.Duration
		wantOK bool
	}{
		{"120", 120 * time.Second, true},
		{"0", 0, true},
		{" 5 ", 5 * time.Second, true},
		{"007", 7 * time.Second, true},
		// HTTP-date, all three formats of RFC 9110 §5.6.7.
		{"Sun, 06 Nov 1994 08:49:37 GMT", 37 * time.Second, true},  // IMF-fixdate
		{"Sunday, 06-Nov-94 08:49:37 GMT", 37 * time.Second, true}, // obsolete RFC 850
		{"Sun Nov  6 08:49:37 1994", 37 * time.Second, true},       // obsolete asctime
		// A date in the past means "now".
		{"Sat, 05 Nov 1994 08:49:37 GMT", 0, true},
		{"Sun, 06 Nov 1994 08:49:00 GMT", 0, true},
		// Huge values are clamped, never overflow.
		{"1000000000000", Max, true},
		{"86401", Max, true},
		{"18446744073709551616", Max, true},
		{"Fri, 31 Dec 9999 23:59:59 GMT", Max, true},
		// Any run of digits is delta-seconds, however long (found by FuzzParseRetryAfter).
		{"000000000000000000000000000000000", 0, true},
		{"0000000000000000000000000000000000000007", 7 * time.Second, true},
		{"1" + "0000000000000000000000000000000000000000", Max, true},
		// Not Retry-After values.
		{"-5", 0, false},
		{"-0", 0, false},
		{"1.5", 0, false},
		{"5s", 0, false},
		{"+5", 0, false},
		{"soon", 0, false},
		{"", 0, false},
		{"   ", 0, false},
		{"Sun, 06 Nov 1994 08:49:37", 0, false}, // no zone
		{"2025-03-01T12:00:00Z", 0, false},      // RFC 3339 is not an HTTP-date
	}
	for _, tt := range tests {
		got, ok := ParseRetryAfter(tt.v, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.v, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestDelay(t *testing.T) {
	// Unix times before 2001 are below the epoch threshold, so use a recent now.
	now := time.Date(2025, time.March, 1, 12, 0, 0, 0, time.UTC)
	epoch := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }
	tests := []struct {
		name   string
		h      http.Header
		want   time.Duration
		wantOK bool
	}{
		{"none", http.Header{}, 0, false},
		{"Retry-After", http.Header{"Retry-After": {"3"}}, 3 * time.Second, true},
		{"Retry-After first", http.Header{"Retry-After": {"3"}, "Ratelimit-Reset": {"9"}}, 3 * time.Second, true},
		{"invalid Retry-After falls through", http.Header{"Retry-After": {"later"}, "Ratelimit-Reset": {"9"}}, 9 * time.Second, true},
		{"RateLimit-Reset", http.Header{"Ratelimit-Reset": {"9"}}, 9 * time.Second, true},
		{"RateLimit-Reset before X-", http.Header{"Ratelimit-Reset": {"9"}, "X-Ratelimit-Reset": {"4"}}, 9 * time.Second, true},
		{"RateLimit-Reset garbage", http.Header{"Ratelimit-Reset": {"-1"}}, 0, false},
		{"X-RateLimit-Reset seconds", http.Header{"X-Ratelimit-Reset": {"4"}}, 4 * time.Second, true},
		{"X-RateLimit-Reset epoch", http.Header{"X-Ratelimit-Reset": {epoch(30 * time.Second)}}, 30 * time.Second, true},
		{"X-RateLimit-Reset epoch past", http.Header{"X-Ratelimit-Reset": {epoch(-time.Hour)}}, 0, true},
		{"X-RateLimit-Reset epoch far", http.Header{"X-Ratelimit-Reset": {epoch(48 * time.Hour)}}, Max, true},
		{"X-RateLimit-Reset garbage", http.Header{"X-Ratelimit-Reset": {"1.5"}}, 0, false},
		{"Retry-After date", http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, 90 * time.Second, true},
	}
	for _, tt := range tests {
		got, ok := Delay(tt.h, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("%s: Delay = %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.wantOK)
		}
	}
}

// FuzzParseRetryAfter: any input gives a delay in [0, Max] or ok == false, and
// small delta-seconds are read exactly.
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"0", "120", "-1", "1.5", "1000000000000", "18446744073709551616",
		"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
		"Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0001 00:00:00 GMT", "", " ", "soon", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := ParseRetryAfter(v, now)
		if !ok && d != 0 {
			t.Fatalf("ParseRetryAfter(%q) = %v, false; want 0 when not ok", v, d)
		}
		if d < 0 || d > Max {
			t.Fatalf("ParseRetryAfter(%q) = %v; want within [0, %v]", v, d, Max)
		}
		if n, err := strconv.ParseUint(v, 10, 64); err == nil && n <= uint64(Max/time.Second) && v[0] != '+' {
			if !ok || d != time.Duration(n)*time.Second {
				t.Fatalf("ParseRetryAfter(%q) = %v, %v; want %ds", v, d, ok, n)
			}
		}
	})
}

// FuzzDelay: the three headers together never give a negative or unbounded
// delay, whatever their values.
func FuzzDelay(f *testing.F) {
	f.Add("3", "9", "4")
	f.Add("later", "-1", "1700000000")
	f.Add("", "", "99999999999999999999")
	f.Add("Fri, 31 Dec 9999 23:59:59 GMT", "x", "0")
	f.Fuzz(func(t *testing.T, retryAfter, reset, xReset string) {
		h := http.Header{}
		for k, v := range map[string]string{"Retry-After": retryAfter, "RateLimit-Reset": reset, "X-RateLimit-Reset": xReset} {
			if v != "" {
				h.Set(k, v)
			}
		}
		d, ok := Delay(h, now)
		if d < 0 || d > Max || (!ok && d != 0) {
			t.Fatalf("Delay(%v) = %v, %v", h, d, ok)
		}
	})
}
