package retry

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/outboundhttp/outbound/internal/refusal"
)

// errProbeLate ends a wait for a probe whose outcome did not come while the
// call could still use it.
var errProbeLate = errors.New("retry: breaker's probe did not report in time")

// awaitProbe is the step after send with WithWaitForBreaker. When attempt a
// was refused by an open breaker (refusal.Probe, that is circuit.OpenError)
// and the breaker's next probe falls before the caller's deadline, with
// minAttemptTime to spare, it waits for that probe's outcome — or, while the
// breaker is still open, for the instant the probe may go, so that one of the
// waiters sends it — and returns a fresh body to send attempt a.n with again.
//
// again is false when there is nothing to wait for: the option is off, a
// was not refused by a breaker, the probe is out of the call's reach (the
// article's "fail fast": the refusal is returned at once), the body cannot
// be sent again, or the outcome did not come in time. a then goes on to the
// usual steps: the caller gets the refusal, or the response kept from an
// earlier attempt. err is set when the caller gave up during the wait.
//
// A waiter whose attempt is sent after the breaker closed passes it like any
// request, and the limits below meter it; one that meets a reopened breaker
// is refused again and comes back here, to wait for the next probe if that
// still fits.
func (cl *call) awaitProbe(a attempt) (b io.ReadCloser, again bool, err error) {
	c := &cl.t.cfg
	if !c.waitBreaker || a.err == nil || !cl.src.rewindable || cl.ctx.Err() != nil {
		return nil, false, nil
	}
	p, ok := refusal.AsProbe(a.err)
	if !ok {
		return nil, false, nil
	}
	in, reported := p.NextProbe()
	if reported == nil {
		return nil, false, nil
	}
	limit := time.Duration(-1) // how long the call can wait; -1: no deadline
	if dl, ok := cl.ctx.Deadline(); ok {
		limit = time.Until(dl) - minAttemptTime
		if in >= limit || limit <= 0 {
			return nil, false, nil
		}
	} else if cl.probed {
		// Without a deadline nothing else bounds the wait: one probe's
		// outcome is all the call waits for.
		return nil, false, nil
	}
	a.release()
	probed, err := waitProbe(cl.ctx, in, limit, reported)
	cl.probed = cl.probed || probed
	if err != nil {
		if errors.Is(err, errProbeLate) {
			return nil, false, nil
		}
		if cl.kept != nil {
			cl.kept.Body.Close()
			cl.kept = nil
		}
		return nil, false, &Error{Attempts: a.n + 1, Err: ctxErr(cl.ctx, err)}
	}
	if b, ok = cl.src.next(); !ok {
		return nil, false, nil
	}
	return b, true, nil
}

// waitProbe waits until reported is closed (probed is then true) or, when
// in > 0, until in has passed. With no probe due (in == 0, one is in flight)
// it gives up after limit (none when limit < 0) with errProbeLate. It returns
// ctx.Err() when the caller gives up first.
func waitProbe(ctx context.Context, in, limit time.Duration, reported <-chan struct{}) (probed bool, err error) {
	d, late := in, false
	if d <= 0 {
		d, late = limit, true
	}
	var timeout <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-reported:
		return true, nil
	case <-timeout:
		if late {
			return false, errProbeLate
		}
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}
