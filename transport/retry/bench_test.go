package retry_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

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

// bodyBase answers every request with a 200 whose body is payload, with its
// length declared or (as a chunked body) not.
type bodyBase struct {
	payload  []byte
	declared bool
}

func (b bodyBase) RoundTrip(r *http.Request) (*http.Response, error) {
	n := int64(-1)
	if b.declared {
		n = int64(len(b.payload))
	}
	return &http.Response{StatusCode: 200, Body: io.NopCloser(bytes.NewReader(b.payload)), ContentLength: n,
		Request: r, Header: http.Header{}}, nil
}

// BenchmarkResponseBuffer: the buffered path (WithResponseBuffer, on by
// default) beside the buffer off, for bodies of 1 KiB and 64 KiB with and
// without a declared length; "on+deadline" is a call with a deadline, whose
// reads are bounded by the stall timer. The caller reads every body to EOF.
func BenchmarkResponseBuffer(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	for _, size := range []int{1 << 10, 64 << 10} {
		for _, declared := range []bool{true, false} {
			base := bodyBase{payload: bytes.Repeat([]byte("x"), size), declared: declared}
			name := fmt.Sprintf("%dKiB", size>>10)
			if !declared {
				name += "-chunked"
			}
			for _, mode := range []struct {
				name string
				ctx  context.Context
				opts []retry.Option
			}{
				{"off", context.Background(), []retry.Option{retry.WithResponseBuffer(0)}},
				{"on", context.Background(), nil},
				{"on+deadline", ctx, nil},
			} {
				b.Run(name+"/"+mode.name, func(b *testing.B) {
					rt := retry.NewTransport(base, mode.opts...)
					req, _ := http.NewRequestWithContext(mode.ctx, http.MethodGet, "http://api.example.com/v1/things", nil)
					b.SetBytes(int64(size))
					b.ReportAllocs()
					for b.Loop() {
						resp, err := rt.RoundTrip(req)
						if err != nil || resp.StatusCode != 200 {
							b.Fatal(resp, err)
						}
						if _, err := io.Copy(io.Discard, resp.Body); err != nil {
							b.Fatal(err)
						}
						resp.Body.Close()
					}
				})
			}
		}
	}
}
