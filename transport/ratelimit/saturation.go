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

// PauseAftermath is how long after a pause the upstream asked for
// (Retry-After, a spent RateLimit quota) has ended its key still counts as
// saturated for a hedge layer above. Every call held for the pause is
// released when it ends, at once, and the answers to that wave are what tell
// whether the upstream has room again: a hedge sent inside the wave doubles a
// burst aimed at an upstream that has just shed load, and when the wave meets
// another pause (the 429-burst drill: the pause ends while the burst goes on)
// the hedge reaches the upstream after it answered the same call with a new
// Retry-After, because its timer fires before the client has read that
// answer (a loaded scheduler hands a socket's readiness to its reader late;
// timers it runs on time). One second is the shortest pause Retry-After can
// ask for (delay-seconds, RFC 9110 §10.2.3), so a wave that is paused again
// is paused before hedging resumes. Attempts themselves are not held for it.
const PauseAftermath = time.Second

// Saturated reports whether another attempt to the key would have to wait
// now, or a hedge would add to a burst: the upstream asked for a pause
// (Retry-After, a spent RateLimit quota) that has not ended PauseAftermath
// ago, requests queue for a concurrency slot, or, with the adaptive limit,
// every slot it allows is taken.
func (st *keyState) Saturated(now time.Time) bool {
	if until := st.pausedUntil.Load(); until != 0 && now.UnixNano() < until+int64(PauseAftermath) {
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
