package retry_test

import (
	"net/http"
	"testing"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/outboundhttp/outbound/transport/retry"
)

// memBase answers every request with a prebuilt 200 and no body.
type memBase struct{}

func (memBase) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r, Header: http.Header{}}, nil
}

func benchRT(b *testing.B, rt http.RoundTripper) {
	req, _ := http.NewRequest(http.MethodGet, "http://api.example.com/v1/things", nil)
	req.Header.Set("Accept", "application/json")
	b.ReportAllocs()
	for b.Loop() {
		resp, err := rt.RoundTrip(req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatal(resp, err)
		}
		resp.Body.Close()
	}
}

// BenchmarkSuccess: the success path (one attempt, no retry), side by side with
// the bare base and go-retryablehttp's RoundTripper, in one run.
func BenchmarkSuccess(b *testing.B) {
	b.Run("base", func(b *testing.B) { benchRT(b, memBase{}) })
	b.Run("retry", func(b *testing.B) { benchRT(b, retry.NewTransport(memBase{})) })
	b.Run("retry-nobudget", func(b *testing.B) {
		benchRT(b, retry.NewTransport(memBase{}, retry.WithoutRetryBudget()))
	})
	b.Run("retryablehttp", func(b *testing.B) {
		c := retryablehttp.NewClient()
		c.Logger = nil
		c.HTTPClient = &http.Client{Transport: memBase{}}
		benchRT(b, &retryablehttp.RoundTripper{Client: c})
	})
}
