package budget_test

import (
	"testing"
	"time"

	"github.com/outboundhttp/outbound/internal/contracttest"
	"github.com/outboundhttp/outbound/transport/budget"
)

func TestContract(t *testing.T) {
	contracttest.Run(t, budget.Middleware(),
		// The suite's requests have contracttest.Deadline (an hour) left,
		// less than this minimum: the budget refuses them unsent.
		contracttest.Refuses(budget.Middleware(budget.WithTotal(2*contracttest.Deadline),
			budget.WithMinRemaining(contracttest.Deadline+time.Minute))),
		contracttest.NeverWaits("budget sets a deadline; it waits for nothing itself"),
		contracttest.NeverDiscards("budget hands on every response"),
	)
}

func TestContractDeadline(t *testing.T) {
	contracttest.Run(t, budget.DeadlineMiddleware(),
		contracttest.NeverRefuses("DeadlineTransport sends every request"),
		contracttest.NeverWaits("DeadlineTransport waits for nothing"),
		contracttest.NeverDiscards("DeadlineTransport hands on every response"),
	)
}
