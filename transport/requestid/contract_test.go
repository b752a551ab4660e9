package requestid_test

import (
	"testing"

	"github.com/outboundhttp/outbound/internal/contracttest"
	"github.com/outboundhttp/outbound/transport/requestid"
)

func TestContract(t *testing.T) {
	contracttest.Run(t, requestid.Middleware(),
		contracttest.NeverRefuses("requestid sends every request"),
		contracttest.NeverWaits("requestid waits for nothing"),
		contracttest.NeverDiscards("requestid hands on every response"),
	)
}
