// Package pushback parses the headers with which a server asks its clients to
// slow down: Retry-After (RFC 9110 §10.2.3), the RateLimit field of
// draft-ietf-httpapi-ratelimit-headers-11 (a policy with r=0 and a reset t),
// the RateLimit-Reset of its earlier revisions, and X-RateLimit-Reset; and it
// reads RateLimit-Policy for telemetry. The retry and ratelimit packages, the
// tracing package and the root package share this one parser.
package pushback

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Max is the largest delay the parser returns; larger values (10^12 seconds,
// a date in year 9999) are clamped to it so no arithmetic overflows. Callers
// apply their own, much smaller caps.
const Max = 24 * time.Hour

// epochThreshold separates X-RateLimit-Reset values that are Unix times
// (GitHub, Twitter) from delta-seconds: no server asks for a 30-year pause.
const epochThreshold = 1_000_000_000

// Delay returns the pause that h asks for, as of now: Retry-After first (it
// MUST take precedence over RateLimit, draft-11 §7), then RateLimit (see
// [RateLimitDelay]), then RateLimit-Reset, then X-RateLimit-Reset. A field
// that is absent, malformed or asks for no pause (RateLimit with no exhausted
// policy) gives way to the next. ok is false when none asks for a pause. A
// date in the past or a zero delta gives (0, true).
func Delay(h http.Header, now time.Time) (d time.Duration, ok bool) {
	if v := h.Get("Retry-After"); v != "" {
		if d, ok := ParseRetryAfter(v, now); ok {
			return d, true
		}
	}
	if d, ok := RateLimitDelay(h); ok {
		return d, true
	}
	if v := h.Get("RateLimit-Reset"); v != "" {
		if d, ok := parseSeconds(v); ok {
			return d, true
		}
	}
	if v := h.Get("X-RateLimit-Reset"); v != "" {
		if d, ok := parseResetEpochOrSeconds(v, now); ok {
			return d, true
		}
	}
	return 0, false
}

// ParseRetryAfter parses a Retry-After value: delta-seconds (a non-negative
// integer) or an HTTP-date (RFC 9110 §5.6.7, all three formats). Anything else
// — negative numbers, fractions, garbage — gives ok == false.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		return parseSeconds(v)
	}
	if len(v) > 64 {
		return 0, false
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return clampUntil(t, now), true
}

// parseSeconds parses non-negative delta-seconds, clamping large values to Max.
// Any run of digits is valid delta-seconds (RFC 9110 §10.2.3, §1.2: too large
// a value is treated as a very long delay), whatever its length: leading zeros
// are skipped and more than 19 significant digits clamp to Max.
func parseSeconds(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
	}
	v = strings.TrimLeft(v, "0")
	if v == "" {
		return 0, true
	}
	if len(v) > 19 {
		return Max, true
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > uint64(Max/time.Second) {
		// Only digits, so the error is overflow: clamp.
		return Max, true
	}
	return time.Duration(n) * time.Second, true
}

func parseResetEpochOrSeconds(v string, now time.Time) (time.Duration, bool) {
	d, ok := parseSeconds(v)
	if !ok {
		return 0, false
	}
	secs, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err == nil && secs >= epochThreshold {
		return clampUntil(time.Unix(secs, 0), now), true
	}
	return d, true
}

func clampUntil(t, now time.Time) time.Duration {
	if !t.After(now) {
		return 0
	}
	d := t.Sub(now) // saturates at the maximum Duration, never wraps
	if d > Max {
		d = Max
	}
	return d
}
