package tracing

import (
	"io"
	"net/http"
	"reflect"
	"testing"

	"github.com/outboundhttp/outbound/internal/contracttest"
)

// TestAttemptSpanRateLimitFields: the attempt span carries what the
// response's RateLimit and RateLimit-Policy fields say, never a partition
// key, and nothing for malformed or absent fields.
func TestAttemptSpanRateLimitFields(t *testing.T) {
	tests := []struct {
		name      string
		h         http.Header
		policy    []string
		limit     string
		remaining int64
		reset     float64 // -1: no reset attribute
	}{
		{"both fields",
			http.Header{
				"Ratelimit-Policy": {`"burst";q=100;w=60,"daily";q=1000;w=86400;pk=:cHsdsRa894==:`},
				"Ratelimit":        {`"burst";r=0;t=30, "daily";r=900;t=36000`},
			},
			[]string{"burst;q=100;w=60", "daily;q=1000;w=86400"}, "burst", 0, 30},
		{"policy split over two lines, limit without reset",
			http.Header{"Ratelimit-Policy": {`"a";q=5`, `"b";q=7;qu="content-bytes";w=1`}, "Ratelimit": {`"b";r=3`}},
			[]string{"a;q=5", "b;q=7;qu=content-bytes;w=1"}, "b", 3, -1},
		{"malformed", http.Header{"Ratelimit-Policy": {`burst;q=100`}, "Ratelimit": {`"burst";r=x`}}, nil, "", 0, -1},
		{"absent", http.Header{}, nil, "", 0, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			te := newTelemetry(t)
			rt := NewAttemptTransport(contracttest.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
				resp := response(req, http.StatusTooManyRequests, "")
				resp.Header = tt.h
				return resp, nil
			}), te.opts()...)
			req, _ := http.NewRequest(http.MethodGet, "http://api.example.com/v1", nil)
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			spans := te.spans.Ended()
			if len(spans) != 1 {
				t.Fatalf("%d spans; want 1", len(spans))
			}
			s := spans[0]
			if v, ok := attr(s, AttrRateLimitPolicy); ok != (tt.policy != nil) || (ok && !reflect.DeepEqual(v.AsStringSlice(), tt.policy)) {
				t.Errorf("%s = %v (present %v); want %q", AttrRateLimitPolicy, v.AsStringSlice(), ok, tt.policy)
			}
			v, ok := attr(s, AttrRateLimitName)
			if ok != (tt.limit != "") || v.AsString() != tt.limit {
				t.Errorf("%s = %q (present %v); want %q", AttrRateLimitName, v.AsString(), ok, tt.limit)
			}
			if v, ok := attr(s, AttrRateLimitRemaining); ok != (tt.limit != "") || v.AsInt64() != tt.remaining {
				t.Errorf("%s = %d (present %v); want %d", AttrRateLimitRemaining, v.AsInt64(), ok, tt.remaining)
			}
			if v, ok := attr(s, AttrRateLimitReset); ok != (tt.reset >= 0) || (ok && v.AsFloat64() != tt.reset) {
				t.Errorf("%s = %v (present %v); want %v", AttrRateLimitReset, v.AsFloat64(), ok, tt.reset)
			}
		})
	}
}
