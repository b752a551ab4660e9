package retry

import (
	"time"

	"github.com/outboundhttp/outbound/internal/retrybudget"
)

// retryBudget counts, for one upstream, the requests started and the retries
// spent over a sliding window (internal/retrybudget, which the hedge layer
// shares). It is safe for concurrent use. A hedge layer below spends it
// through spareBudget, so hedges and retries draw on one budget.
type retryBudget struct{ *retrybudget.Budget }

func newRetryBudget(c *config) *retryBudget {
	return &retryBudget{retrybudget.New(c.ratio, c.window, c.minPerSecond)}
}

// request records the start of a call (its first attempt).
func (b *retryBudget) request(now time.Time) { b.Request(now) }

// withdraw takes one retry from the budget, reporting whether there was one.
func (b *retryBudget) withdraw(now time.Time) bool { return b.Withdraw(now) }

// spareBudget is the view of a retryBudget that a hedge layer below spends
// (the callctx.Withdrawer in the context of each call): a hedge takes a
// resend only while at most half the budget is spent, so an outage that
// drained it leaves what comes back to the retries of the calls that failed
// (internal/retrybudget.WithdrawShare). A pointer conversion, it costs
// nothing.
type spareBudget retryBudget

// Withdraw takes one resend for a hedge from the spare half of the budget.
func (b *spareBudget) Withdraw(now time.Time) bool { return b.WithdrawShare(now, 0.5) }
