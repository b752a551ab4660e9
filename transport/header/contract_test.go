package header_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/outboundhttp/outbound/internal/contracttest"
	"github.com/outboundhttp/outbound/transport/header"
)

func TestContract(t *testing.T) {
	token := func(context.Context) (string, error) { return "tok", nil }
	contracttest.Run(t,
		header.Middleware(header.WithHeader("User-Agent", "contract/1"), header.WithTokenSource(token)),
		contracttest.Refuses(header.Middleware(header.WithTokenSource(func(context.Context) (string, error) {
			return "", errors.New("no token")
		}))),
		contracttest.NeverWaits("header waits for nothing of its own (a token source that waits is the caller's code, given the request context)"),
		contracttest.NeverDiscards("header hands on every response"),
	)
}

func TestContractPassThrough(t *testing.T) {
	// Nothing to add: the request goes on as it is.
	contracttest.Run(t, func(next http.RoundTripper) http.RoundTripper { return header.NewTransport(next) },
		contracttest.NeverRefuses("without a token source nothing can fail"),
		contracttest.NeverWaits("header waits for nothing"),
		contracttest.NeverDiscards("header hands on every response"),
	)
}
