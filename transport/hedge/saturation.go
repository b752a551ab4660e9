package hedge

import "github.com/outboundhttp/outbound/internal/callctx"

// Saturation. A hedge helps an upstream whose tail comes from stragglers,
// and hurts one that is slow because it is saturated: a copy sent then adds
// load exactly when the upstream has none to spare, and is queued or shed
// with the rest (the overload drill: goodput 1 490/s without hedges, 1 342/s
// with p95 hedges, docs/hedge.md). So before it sends a hedge, the call asks
// the rate-limit layer below (transport/ratelimit), which told the first
// attempt's context on admission (callctx.NoteAdmitted), whether the
// upstream has room for one more request now: no server-requested pause,
// nobody queued for a concurrency slot, and, with the adaptive limit, a slot
// free. If not, the hedge is suppressed ("saturated", like an empty budget:
// nothing in flight is canceled) and nothing is withdrawn from the budget.
// Without a rate-limit layer below, nothing is asked.

var _ callctx.SaturationSink = (*call)(nil)

// SetSaturation records the saturation of the upstream the first attempt
// was admitted to; the layers below call it through callctx.NoteAdmitted.
func (c *call) SetSaturation(s callctx.Saturation) {
	c.mu.Lock()
	c.sat = s
	c.mu.Unlock()
}
