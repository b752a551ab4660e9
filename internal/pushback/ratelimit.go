package pushback

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dunglas/httpsfv"
)

// The structured fields of draft-ietf-httpapi-ratelimit-headers-11: RateLimit
// (§4, the service limits left) and RateLimit-Policy (§3, the quotas). Both
// are Structured Field Lists (RFC 9651, which obsoletes RFC 8941) parsed by
// github.com/dunglas/httpsfv, so quoting, parameters and field lines split
// over several headers (RFC 9651 §3.1) are read as the RFC says, not by hand.
//
// Malformed fields MUST be ignored (draft §7, Client Behavior), so every function here reads a
// malformed field as absent: it never returns an error and never panics.

// Limit is one service-limit item of a RateLimit field (draft §4.1).
type Limit struct {
	// Policy names the quota policy the item belongs to.
	Policy string
	// Remaining is the r parameter: quota units left.
	Remaining int64
	// Reset is the t parameter, clamped to Max: the time until more quota is
	// made available. HasReset is false when t is absent.
	Reset    time.Duration
	HasReset bool
}

// Policy is one quota-policy item of a RateLimit-Policy field (draft §3.1).
type Policy struct {
	// Name identifies the policy.
	Name string
	// Quota is the q parameter: the quota allocated, in Unit.
	Quota int64
	// Unit is the qu parameter; "" means the default, "requests".
	Unit string
	// Window is the w parameter, clamped to Max; 0 when absent.
	Window time.Duration
}

// String renders p as an item of the field without its partition key, e.g.
// `burst;q=100;w=60` (the name unquoted), for telemetry: a partition key may
// identify a user (draft §6.1, §8.2), so it is never recorded.
func (p Policy) String() string {
	var b strings.Builder
	b.WriteString(p.Name)
	b.WriteString(";q=")
	b.WriteString(strconv.FormatInt(p.Quota, 10))
	if p.Unit != "" {
		b.WriteString(";qu=")
		b.WriteString(p.Unit)
	}
	if p.Window > 0 {
		b.WriteString(";w=")
		b.WriteString(strconv.FormatInt(int64(p.Window/time.Second), 10))
	}
	return b.String()
}

// maxFieldLen bounds the field values parsed; RFC 9651 §4.2 lets a parser
// refuse what is larger than it is willing to handle, and a RateLimit field
// carries a few short items.
const maxFieldLen = 4096

// RateLimit returns the service-limit items of the RateLimit field of h, or
// nil when the field is absent or malformed. The field is malformed, and
// ignored whole, when it is not a List whose every member is an Item whose
// value is a String with an r parameter that is a non-negative Integer and,
// when present, a t parameter that is a non-negative Integer (draft §4.1).
// Other parameters (pk, vendor ones) are comments and are skipped.
func RateLimit(h http.Header) []Limit {
	l, ok := parseList(h, "Ratelimit")
	if !ok {
		return nil
	}
	out := make([]Limit, 0, len(l))
	for _, m := range l {
		it, name, r, ok := namedItem(m, "r")
		if !ok {
			return nil
		}
		lim := Limit{Policy: name, Remaining: r}
		if _, present := it.Params.Get("t"); present {
			t, ok := param(it, "t")
			if !ok || t < 0 {
				return nil
			}
			lim.Reset, lim.HasReset = seconds(t), true
		}
		out = append(out, lim)
	}
	return out
}

// Policies returns the quota-policy items of the RateLimit-Policy field of h,
// or nil when the field is absent or malformed: not a List of Items whose
// values are Strings, each with a non-negative Integer q, and, when present,
// a String qu and a positive Integer w (draft §3.1).
func Policies(h http.Header) []Policy {
	l, ok := parseList(h, "Ratelimit-Policy")
	if !ok {
		return nil
	}
	out := make([]Policy, 0, len(l))
	for _, m := range l {
		it, name, q, ok := namedItem(m, "q")
		if !ok {
			return nil
		}
		p := Policy{Name: name, Quota: q}
		if v, present := it.Params.Get("qu"); present {
			u, ok := v.(string)
			if !ok {
				return nil
			}
			p.Unit = u
		}
		if _, present := it.Params.Get("w"); present {
			w, ok := param(it, "w")
			if !ok || w <= 0 {
				return nil
			}
			p.Window = seconds(w)
		}
		out = append(out, p)
	}
	return out
}

// namedItem reads a member that both fields are lists of: an Item whose value
// is a String (the policy's name) with a required non-negative Integer
// parameter k (r for a limit, q for a policy). ok is false when m is not one.
func namedItem(m httpsfv.Member, k string) (it httpsfv.Item, name string, n int64, ok bool) {
	if it, ok = m.(httpsfv.Item); !ok {
		return it, "", 0, false
	}
	if name, ok = it.Value.(string); !ok {
		return it, "", 0, false
	}
	if n, ok = param(it, k); !ok || n < 0 {
		return it, "", 0, false
	}
	return it, name, n, true
}

// RateLimitDelay returns the pause the RateLimit field of h asks for: the
// reset time of the exhausted policies (r=0 with a t). With several policies
// the one that has run out decides (the draft's example "Multiple policies
// in response": the closest limit to reach); when several have run out, the longest reset, since a request is
// refused while any one of them is exhausted. ok is false when the field is
// absent or malformed, or no policy has both r=0 and a t.
func RateLimitDelay(h http.Header) (d time.Duration, ok bool) {
	for _, l := range RateLimit(h) {
		if l.Remaining == 0 && l.HasReset {
			d, ok = max(d, l.Reset), true
		}
	}
	return d, ok
}

// parseList parses every line of the field named by its canonical key
// (looked up directly, so a response without the field costs one map
// lookup and no allocation).
func parseList(h http.Header, key string) (httpsfv.List, bool) {
	vv := h[key]
	if len(vv) == 0 {
		return nil, false
	}
	n := 0
	for _, v := range vv {
		n += len(v)
	}
	if n > maxFieldLen {
		return nil, false
	}
	l, err := httpsfv.UnmarshalList(vv)
	if err != nil || len(l) == 0 {
		return nil, false
	}
	return l, true
}

// param returns the Integer parameter k of it.
func param(it httpsfv.Item, k string) (int64, bool) {
	if it.Params == nil {
		return 0, false
	}
	v, ok := it.Params.Get(k)
	if !ok {
		return 0, false
	}
	n, ok := v.(int64)
	return n, ok
}

// seconds converts non-negative integer seconds (at most 15 digits in a
// Structured Field, RFC 9651 §3.3.1) to a Duration clamped to Max.
func seconds(n int64) time.Duration {
	if n > int64(Max/time.Second) {
		return Max
	}
	return time.Duration(n) * time.Second
}
