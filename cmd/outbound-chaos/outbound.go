package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/outboundhttp/outbound"
	"github.com/outboundhttp/outbound/transport/tracing"
)

// outboundClient returns outbound's standard stack, exactly as
// outbound.NewClient builds it from DefaultConfig, with a total budget of
// total per call and its telemetry going to the providers in tp (none: the
// global, no-op, ones); keys turns IdempotencyKeys on.
func outboundClient(total time.Duration, tp []tracing.Option, keys bool) (*http.Client, error) {
	cfg := outbound.DefaultConfig()
	cfg.TotalBudget = total
	cfg.IdempotencyKeys = keys
	hc, err := outbound.NewClient(cfg, outbound.WithTracingOptions(tp...))
	if err != nil {
		return nil, fmt.Errorf("-budget %v: %w", total, err)
	}
	return hc, nil
}

// outboundCaller is outbound's standard stack as a caller.
func outboundCaller(e clientEnv) (caller, error) {
	hc, err := outboundClient(e.budget, e.tracing, e.idempotencyKeys)
	if err != nil {
		return caller{}, err
	}
	return httpCaller(hc), nil
}
