package tracing

import (
	"context"
	"net/http"
	"testing"
	"time"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/internal/contracttest"
	"github.com/outboundhttp/outbound/transport/budget"
	"github.com/outboundhttp/outbound/transport/requestid"
)

// TestQuietLogicalLayerKeepsTheSharedCall: between a request-ID layer and a
// budget layer (NewClient's order), a logical layer that records nothing
// lets the two share one call context and one request copy, as they do with
// nothing between them: the chain allocates what requestid and budget alone
// allocate plus the logical layer's own, and the attempt still carries the
// ID and the deadline.
func TestQuietLogicalLayerKeepsTheSharedCall(t *testing.T) {
	quiet := []Option{WithTracerProvider(tracenoop.NewTracerProvider()), WithMeterProvider(metricnoop.NewMeterProvider())}
	var seen context.Context
	base := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen = r.Context()
		return ok200(r)
	})
	direct := requestid.NewTransport(budget.NewTransport(base, budget.WithTotal(time.Minute)))
	traced := requestid.NewTransport(NewTransport(budget.NewTransport(base, budget.WithTotal(time.Minute)), quiet...))
	if !callctx.AdoptsCall(NewTransport(budget.NewTransport(base), quiet...)) {
		t.Fatal("the logical layer over a budget layer does not report AdoptsCall")
	}
	if callctx.AdoptsCall(NewTransport(base, quiet...)) {
		t.Fatal("the logical layer over a plain RoundTripper reports AdoptsCall")
	}

	req, _ := http.NewRequest(http.MethodGet, "http://h/v1", nil)
	call := func(rt http.RoundTripper) {
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	call(traced)
	if _, ok := callctx.RequestID(seen); !ok {
		t.Error("the attempt carries no request ID")
	}
	if _, ok := seen.Deadline(); !ok {
		t.Error("the attempt carries no deadline")
	}
	// What the quiet logical layer allocates of its own (the span name),
	// measured alone over the base.
	alone := NewTransport(base, quiet...)
	own := testing.AllocsPerRun(200, func() { call(alone) }) - testing.AllocsPerRun(200, func() { call(base) })
	shared := testing.AllocsPerRun(200, func() { call(direct) })
	got := testing.AllocsPerRun(200, func() { call(traced) })
	if got > shared+own {
		t.Errorf("requestid, quiet logical layer, budget: %v allocations per call; want %v: requestid and budget sharing one context (%v) and the logical layer's own %v",
			got, shared+own, shared, own)
	}
}
