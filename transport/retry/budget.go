package retry

import (
	"time"

	"github.com/outboundhttp/outbound/internal/retrybudget"
)

// retryBudget counts, for one upstream, the requests started and the retries
// spent over a sliding window (internal/retrybudget, which the hedge layer
// shares). It is safe for concurrent use. Its Withdraw method makes it the
// callctx.Withdrawer a hedge layer below spends, so hedges and retries draw
// on one budget.
type retryBudget struct{ *retrybudget.Budget }

func newRetryBudget(c *config) *retryBudget {
	return &retryBudget{retrybudget.New(c.ratio, c.window, c.minPerSecond)}
}

// request records the start of a call (its first attempt).
func (b *retryBudget) request(now time.Time) { b.Request(now) }

// withdraw takes one retry from the budget, reporting whether there was one.
func (b *retryBudget) withdraw(now time.Time) bool { return b.Withdraw(now) }
