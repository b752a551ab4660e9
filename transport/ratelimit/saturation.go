package ratelimit

import (
	"time"

	"github.com/outboundhttp/outbound/internal/callctx"
)

// A keyState tells a hedge layer above (transport/hedge) whether its
// upstream has room for one more request: every admitted attempt hands it
// to the attempt's callctx.SaturationSink, if its context carries one, and
// the hedge asks when its timer fires. A hedge sent to a saturated upstream
// only waits here beside the attempt it copies, or takes the slot of another
// call's first attempt, and adds load exactly when the upstream is slow
// because it has none to spare (the overload drill, docs/hedge.md).
var _ callctx.Saturation = (*keyState)(nil)

// Saturated reports whether another attempt to the key would have to wait
// now: the upstream asked for a pause (Retry-After, a spent RateLimit
// quota), requests queue for a concurrency slot, or, with the adaptive
// limit, every slot it allows is taken.
func (st *keyState) Saturated(now time.Time) bool {
	if until := st.pausedUntil.Load(); until != 0 && now.UnixNano() < until {
		return true
	}
	switch {
	case st.adaptive != nil:
		s := st.adaptive.stats()
		return s.Queued > 0 || s.InFlight >= s.Limit
	case st.sem != nil:
		_, waiting := st.sem.inUse()
		return waiting > 0
	}
	return false
}
