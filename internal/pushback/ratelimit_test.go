package pushback

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRateLimit(t *testing.T) {
	tests := []struct {
		name string
		v    []string
		want []Limit
	}{
		{"draft example", []string{`"default";r=50;t=30`}, []Limit{{"default", 50, 30 * time.Second, true}}},
		{"no reset", []string{`"default";r=999;pk=:dHJpYWwxMjEzMjM=:`}, []Limit{{Policy: "default", Remaining: 999}}},
		{"exhausted", []string{`"burst";r=0;t=30`}, []Limit{{"burst", 0, 30 * time.Second, true}}},
		{"two policies", []string{`"burst";r=0;t=30, "daily";r=900;t=3600`},
			[]Limit{{"burst", 0, 30 * time.Second, true}, {"daily", 900, time.Hour, true}}},
		// RFC 9651 §3.1: a List split over several field lines is one List.
		{"two lines", []string{`"burst";r=0;t=30`, `"daily";r=900;t=3600`},
			[]Limit{{"burst", 0, 30 * time.Second, true}, {"daily", 900, time.Hour, true}}},
		{"vendor parameter is a comment", []string{`"default";r=1;t=2;acme-x=?1`}, []Limit{{"default", 1, 2 * time.Second, true}}},
		{"huge reset clamps", []string{`"d";r=0;t=999999999999999`}, []Limit{{"d", 0, Max, true}}},
		// Malformed: ignored whole.
		{"absent", nil, nil},
		{"empty", []string{""}, nil},
		{"older draft dictionary", []string{`limit=100, remaining=0, reset=30`}, nil},
		{"token name", []string{`default;r=0;t=30`}, nil},
		{"no r", []string{`"default";t=30`}, nil},
		{"negative r", []string{`"default";r=-1;t=30`}, nil},
		{"negative t", []string{`"default";r=0;t=-30`}, nil},
		{"decimal t", []string{`"default";r=0;t=1.5`}, nil},
		{"string r", []string{`"default";r="0";t=30`}, nil},
		{"inner list", []string{`("a" "b");r=0;t=30`}, nil},
		{"one bad member spoils the field", []string{`"a";r=0;t=30, "b";r=x`}, nil},
		{"bad second line", []string{`"a";r=0;t=30`, `"b";r=`}, nil},
		{"unterminated string", []string{`"default;r=0;t=30`}, nil},
		{"16-digit integer", []string{`"d";r=0;t=1000000000000000`}, nil},
		{"too long", []string{`"d";r=0;t=1,` + strings.Repeat(`"x";r=1,`, 600) + `"y";r=1`}, nil},
	}
	for _, tt := range tests {
		h := http.Header{}
		for _, v := range tt.v {
			h.Add("RateLimit", v)
		}
		if got := RateLimit(h); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: RateLimit(%q) = %+v; want %+v", tt.name, tt.v, got, tt.want)
		}
	}
}

func TestRateLimitDelay(t *testing.T) {
	tests := []struct {
		v      string
		want   time.Duration
		wantOK bool
	}{
		{`"default";r=0;t=1`, time.Second, true},
		{`"burst";r=0;t=30`, 30 * time.Second, true},
		{`"burst";r=0;t=0`, 0, true},
		// Quota left: no pause, whatever the reset.
		{`"default";r=50;t=30`, 0, false},
		// Exhausted but no reset: nothing to wait for.
		{`"default";r=0`, 0, false},
		// Several policies: the one that ran out decides ...
		{`"daily";r=900;t=36000, "burst";r=0;t=30`, 30 * time.Second, true},
		// ... and of several that ran out, the one that comes back last.
		{`"burst";r=0;t=30, "daily";r=0;t=36000`, 10 * time.Hour, true},
		// Malformed: as if absent.
		{`"burst";r=0;t=`, 0, false},
		{`"burst";r=0;t=30;`, 0, false},
		{`burst;r=0;t=30`, 0, false},
		{`"burst";r=0;t=30,,`, 0, false},
	}
	for _, tt := range tests {
		h := http.Header{"Ratelimit": {tt.v}}
		got, ok := RateLimitDelay(h)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("RateLimitDelay(%q) = %v, %v; want %v, %v", tt.v, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestPolicies(t *testing.T) {
	tests := []struct {
		v    string
		want []Policy
		str  []string
	}{
		{`"burst";q=100;w=60,"daily";q=1000;w=86400`,
			[]Policy{{"burst", 100, "", time.Minute}, {"daily", 1000, "", 24 * time.Hour}},
			[]string{"burst;q=100;w=60", "daily;q=1000;w=86400"}},
		{`"peruser";q=65535;qu="content-bytes";w=10;pk=:sdfjLJUOUH==:`,
			[]Policy{{"peruser", 65535, "content-bytes", 10 * time.Second}},
			[]string{"peruser;q=65535;qu=content-bytes;w=10"}}, // no partition key
		{`"default";q=100`, []Policy{{Name: "default", Quota: 100}}, []string{"default;q=100"}},
		{`"default";w=60`, nil, nil},              // q is required
		{`"default";q=100;w=0`, nil, nil},         // w is positive
		{`"default";q=100;qu=requests`, nil, nil}, // qu is a String
		{`"default";q=-1`, nil, nil},
		{`default;q=100`, nil, nil},
		{`"a";q=1, "b";q=?1`, nil, nil},
		{``, nil, nil},
	}
	for _, tt := range tests {
		got := Policies(http.Header{"Ratelimit-Policy": {tt.v}})
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Policies(%q) = %+v; want %+v", tt.v, got, tt.want)
			continue
		}
		for i, p := range got {
			if s := p.String(); s != tt.str[i] {
				t.Errorf("Policies(%q)[%d].String() = %q; want %q", tt.v, i, s, tt.str[i])
			}
		}
	}
}

// TestDelayRateLimit: where the RateLimit field stands among the others.
func TestDelayRateLimit(t *testing.T) {
	now := time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		h      http.Header
		want   time.Duration
		wantOK bool
	}{
		{"RateLimit alone", http.Header{"Ratelimit": {`"default";r=0;t=1`}}, time.Second, true},
		// draft-11 §7: Retry-After MUST take precedence, shorter or longer.
		{"Retry-After wins (shorter)", http.Header{"Retry-After": {"2"}, "Ratelimit": {`"default";r=0;t=30`}}, 2 * time.Second, true},
		{"Retry-After wins (longer)", http.Header{"Retry-After": {"60"}, "Ratelimit": {`"default";r=0;t=30`}}, time.Minute, true},
		{"invalid Retry-After gives way", http.Header{"Retry-After": {"soon"}, "Ratelimit": {`"default";r=0;t=30`}}, 30 * time.Second, true},
		{"RateLimit before RateLimit-Reset", http.Header{"Ratelimit": {`"d";r=0;t=30`}, "Ratelimit-Reset": {"5"}}, 30 * time.Second, true},
		{"quota left gives way to RateLimit-Reset", http.Header{"Ratelimit": {`"d";r=3;t=30`}, "Ratelimit-Reset": {"5"}}, 5 * time.Second, true},
		{"malformed RateLimit gives way", http.Header{"Ratelimit": {`r=0, t=30`}, "X-Ratelimit-Reset": {"4"}}, 4 * time.Second, true},
		{"malformed RateLimit changes nothing", http.Header{"Ratelimit": {`"d";r=0;t=x`}}, 0, false},
		{"quota left changes nothing", http.Header{"Ratelimit": {`"d";r=10;t=30`}}, 0, false},
	}
	for _, tt := range tests {
		got, ok := Delay(tt.h, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("%s: Delay = %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestRateLimitAbsentAllocatesNothing(t *testing.T) {
	h := http.Header{"Content-Type": {"text/plain"}}
	if n := testing.AllocsPerRun(100, func() { RateLimitDelay(h); Policies(h) }); n != 0 {
		t.Errorf("RateLimitDelay and Policies on a response without the fields: %v allocs; want 0", n)
	}
}

// FuzzRateLimit: any RateLimit and RateLimit-Policy values, on one or two
// field lines, never panic, and what they give is within bounds: a pause in
// [0, Max] only from an exhausted policy with a reset, non-negative numbers.
func FuzzRateLimit(f *testing.F) {
	for _, s := range [][2]string{
		{`"default";r=0;t=1`, `"default";q=100;w=60`},
		{`"burst";r=0;t=30, "daily";r=900;t=3600`, `"burst";q=100;w=60,"daily";q=1000;w=86400`},
		{`"default";r=999;pk=:dHJpYWwxMjEzMjM=:`, `"peruser";q=65535;qu="content-bytes";w=10;pk=:sdfjLJUOUH==:`},
		{`"d";r=0;t=999999999999999`, `"d";q=999999999999999;w=999999999999999`},
		{`limit=100, remaining=0, reset=30`, `100;w=60`},
		{`("a" "b");r=0;t=30`, `"a";q=?1`},
		{`"d";r=-1;t=1.5`, `"d";q=1;w=0`},
		{`"unterminated`, `@1700000000`},
		{`%"display"`, `"x";q=1;qu=%"b"`},
		{"\x00", "\xff"},
		{``, ``},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, rl, policy string) {
		for _, h := range []http.Header{
			{"Ratelimit": {rl}, "Ratelimit-Policy": {policy}},
			{"Ratelimit": {rl, policy}, "Ratelimit-Policy": {policy, rl}},
		} {
			limits := RateLimit(h)
			exhausted := false
			for _, l := range limits {
				if l.Remaining < 0 || l.Reset < 0 || l.Reset > Max || (!l.HasReset && l.Reset != 0) {
					t.Fatalf("RateLimit(%q) = %+v: out of bounds", h["Ratelimit"], l)
				}
				exhausted = exhausted || (l.Remaining == 0 && l.HasReset)
			}
			d, ok := RateLimitDelay(h)
			if ok != exhausted || d < 0 || d > Max || (!ok && d != 0) {
				t.Fatalf("RateLimitDelay(%q) = %v, %v; limits %+v", h["Ratelimit"], d, ok, limits)
			}
			for _, p := range Policies(h) {
				if p.Quota < 0 || p.Window < 0 || p.Window > Max {
					t.Fatalf("Policies(%q) = %+v: out of bounds", h["Ratelimit-Policy"], p)
				}
				_ = p.String()
			}
			if d, ok := Delay(h, now); d < 0 || d > Max || (!ok && d != 0) {
				t.Fatalf("Delay(%v) = %v, %v", h, d, ok)
			}
		}
	})
}
