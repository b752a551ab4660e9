package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/outboundhttp/outbound"
	"github.com/outboundhttp/outbound/transport/hedge"
	"github.com/outboundhttp/outbound/transport/tracing"
)

// outboundClient returns outbound's standard stack, exactly as
// outbound.NewClient builds it from DefaultConfig, with a total budget of
// total per call and its telemetry going to the providers in tp (none: the
// global, no-op, ones); keys turns IdempotencyKeys on.
func outboundClient(total time.Duration, tp []tracing.Option, keys bool) (*http.Client, error) {
	return newOutboundClient(total, tp, keys, false)
}

// newOutboundClient is outboundClient; hedged turns on hedging after the
// upstream's p95 latency (HedgeDelay = hedge.DefaultMinDelay, the floor, and
// HedgeQuantile = hedge.DefaultQuantile), DefaultConfig's hedging today.
func newOutboundClient(total time.Duration, tp []tracing.Option, keys, hedged bool) (*http.Client, error) {
	cfg := outbound.DefaultConfig()
	cfg.TotalBudget = total
	cfg.IdempotencyKeys = keys
	if hedged {
		cfg.HedgeDelay, cfg.HedgeQuantile = hedge.DefaultMinDelay, hedge.DefaultQuantile
	}
	hc, err := outbound.NewClient(cfg, outbound.WithTracingOptions(tp...))
	if err != nil {
		return nil, fmt.Errorf("-budget %v: %w", total, err)
	}
	return hc, nil
}

// outboundCaller is outbound's standard stack as a caller.
func outboundCaller(e clientEnv) (caller, error) {
	hc, err := newOutboundClient(e.budget, e.tracing, e.idempotencyKeys, e.hedge)
	if err != nil {
		return caller{}, err
	}
	return httpCaller(hc), nil
}
