// Package clock holds the one context-aware wait the module's layers share:
// the retry backoff, the rate limiter's token and pushback waits, chaos's
// injected latency and trickle pauses, and the drills' open-loop pacing.
//
// It uses a real time.Timer, so inside a testing/synctest bubble the wait is
// virtual: tests control time with synctest instead of a private clock hook.
package clock

import (
	"context"
	"time"
)

// Sleep waits for d, or until ctx is done, whichever is first. It returns nil
// after the full wait and ctx.Err() when ctx ended first (also when it had
// already ended). A d of zero or less does not wait: it returns ctx.Err().
// The timer is stopped on return, so an abandoned wait holds nothing.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SleepUntil is Sleep until the wall-clock instant t (Sleep(ctx,
// time.Until(t))): a t already past does not wait.
func SleepUntil(ctx context.Context, t time.Time) error {
	return Sleep(ctx, time.Until(t))
}

// InBubble reports whether now, just read from time.Now, was read inside a
// testing/synctest bubble: the runtime gives a bubble's times no monotonic
// clock reading (runtime/time.go), and every time read outside one has it.
// A layer that keeps timers in a pool for the next request uses it to keep
// a bubble's timers out of the pool, and the pool out of a bubble: stopping
// or resetting a timer across a bubble's boundary is a fatal error of the
// runtime. TestInBubble fails, rather than the process, if that changes.
func InBubble(now time.Time) bool { return now == now.Round(0) }
