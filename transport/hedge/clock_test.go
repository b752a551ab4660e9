package hedge_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/internal/contracttest"
	"github.com/outboundhttp/outbound/transport/hedge"
)

// The first attempt starts at the call's clock reading, when a budget layer
// above shared one (callctx.Now), and hands it on to the layers below: one
// reading for the attempt's way out. A hedge reads the clock itself.
func TestFirstAttemptSharesTheCallsStart(t *testing.T) {
	// A reading no clock gives now, so that sharing it is told from reading
	// the clock again.
	stamp := time.Now().Add(-time.Hour)
	var seen time.Time
	rt := hedge.NewTransport(contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen = callctx.Now(r.Context())
		return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
	}), hedge.WithDelay(time.Minute))
	call := callctx.NewCall(context.Background())
	call.SetDeadline(stamp, time.Now().Add(time.Minute), context.DeadlineExceeded)
	req, err := http.NewRequestWithContext(call, http.MethodGet, "http://a.test/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !seen.Equal(stamp) {
		t.Fatalf("the layer below read %v as the attempt's start; want the call's %v", seen, stamp)
	}
	// Without a shared reading, the first attempt's start is read afresh.
	req, _ = http.NewRequest(http.MethodGet, "http://a.test/", nil)
	before := time.Now()
	resp, err = rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if seen.Before(before) {
		t.Fatalf("start %v read before the call began (%v)", seen, before)
	}
}
