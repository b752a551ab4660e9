package chaos_test

import (
	"testing"

	"github.com/outboundhttp/outbound/internal/contracttest"
	"github.com/outboundhttp/outbound/transport/chaos"
)

func TestContract(t *testing.T) {
	contracttest.Run(t, chaos.Middleware(),
		// A reset before delivery answers without sending.
		contracttest.Refuses(chaos.Middleware(chaos.WithFaults(chaos.ConnReset()))),
		contracttest.NeverWaits("with no faults chaos waits for nothing; an injected latency is a slow upstream, which runs into the deadline on purpose"),
		// A reset after delivery throws the upstream's response away.
		contracttest.Discards(chaos.Middleware(chaos.WithFaults(chaos.ConnReset().AfterDelivery()))),
	)
}
