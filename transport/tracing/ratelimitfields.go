package tracing

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/outboundhttp/outbound/internal/pushback"
)

// Attribute keys for the RateLimit and RateLimit-Policy response fields
// (draft-ietf-httpapi-ratelimit-headers-11), set on the attempt span whose
// response carries them; docs/telemetry.md describes each.
const (
	// AttrRateLimitPolicy lists the quota policies of RateLimit-Policy, each
	// as name;q=…[;qu=…][;w=…] ("burst;q=100;w=60"), partition keys left out.
	AttrRateLimitPolicy = attribute.Key("outbound.ratelimit.policy")
	// AttrRateLimitName names the service limit of the RateLimit field with
	// the fewest quota units left (the first of them on a tie).
	AttrRateLimitName = attribute.Key("outbound.ratelimit.name")
	// AttrRateLimitRemaining is that limit's r: quota units left.
	AttrRateLimitRemaining = attribute.Key("outbound.ratelimit.remaining")
	// AttrRateLimitReset is that limit's t, in seconds, when it has one.
	AttrRateLimitReset = attribute.Key("outbound.ratelimit.reset")
)

// recordRateLimitFields puts what the RateLimit fields of h say on span.
// Malformed fields are ignored, as the draft requires (§7). A response
// without them costs two map lookups and no allocation.
func recordRateLimitFields(span trace.Span, h http.Header) {
	if len(h["Ratelimit"]) == 0 && len(h["Ratelimit-Policy"]) == 0 {
		return
	}
	if !span.IsRecording() {
		return
	}
	if pp := pushback.Policies(h); len(pp) > 0 {
		ss := make([]string, len(pp))
		for i, p := range pp {
			ss[i] = p.String()
		}
		span.SetAttributes(AttrRateLimitPolicy.StringSlice(ss))
	}
	ll := pushback.RateLimit(h)
	if len(ll) == 0 {
		return
	}
	low := ll[0]
	for _, l := range ll[1:] {
		if l.Remaining < low.Remaining {
			low = l
		}
	}
	attrs := []attribute.KeyValue{AttrRateLimitName.String(low.Policy), AttrRateLimitRemaining.Int64(low.Remaining)}
	if low.HasReset {
		attrs = append(attrs, AttrRateLimitReset.Float64(low.Reset.Seconds()))
	}
	span.SetAttributes(attrs...)
}
