package ratelimit

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// asyncTimerChild is set in the environment of a copy of this test binary
// that runs with the timers Go had before 1.23.
const asyncTimerChild = "OUTBOUND_RATELIMIT_ASYNCTIMERCHAN_CHILD"

// TestQueueWithAsyncTimerChan: a main module may keep the timers of Go
// before 1.23 (GODEBUG=asynctimerchan=1), whose channel holds a tick sent
// before Stop or Reset. A pooled waiter whose last wait ended as its timer
// fired carries such a tick into its next wait, which must still last the
// whole queue timeout instead of refusing at once. The test runs itself again
// in a child process with that setting, so the rest of the package keeps the
// default timers.
func TestQueueWithAsyncTimerChan(t *testing.T) {
	if os.Getenv(asyncTimerChild) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestQueueWithAsyncTimerChan$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), asyncTimerChild+"=1", "GODEBUG=asynctimerchan=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestQueueWithAsyncTimerChan") {
			t.Fatalf("with GODEBUG=asynctimerchan=1: %v\n%s", err, out)
		}
		return
	}

	// Fired leaves a tick in an async timer's channel; with the default
	// timers the channel never shows one, and this child would test nothing.
	fired := func(timer *time.Timer) bool { return len(timer.C) == 1 }
	probe := time.NewTimer(time.Nanosecond)
	waitFor(t, "an asynctimerchan=1 timer to hold its tick", func() bool { return fired(probe) })

	t.Run("stopTimer drops the tick", func(t *testing.T) {
		timer := time.NewTimer(time.Nanosecond)
		waitFor(t, "the timer to fire", func() bool { return fired(timer) })
		stopTimer(timer)
		if fired(timer) {
			t.Fatal("the tick is still in the channel after stopTimer")
		}
	})

	t.Run("a pooled waiter's stale tick", func(t *testing.T) {
		const timeout = 20 * time.Millisecond
		rt := slotHeld(t, timeout)
		sem := rt.states.Get("http://a.test:80").sem
		for i := range 8 {
			// A waiter whose timer fired after its wait ended another way
			// (its grant won the select), as the pool receives it.
			stale := sem.newWaiter(time.Now())
			stale.timer = time.NewTimer(time.Nanosecond)
			waitFor(t, "the stale timer to fire", func() bool { return fired(stale.timer) })
			sem.recycle(stale)

			refusedAfterTimeout(t, rt, i, timeout)
		}
	})
}
