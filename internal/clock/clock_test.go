package clock

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if err := Sleep(context.Background(), 3*time.Second); err != nil {
			t.Fatalf("Sleep = %v; want nil", err)
		}
		if got := time.Since(start); got != 3*time.Second {
			t.Errorf("slept %v; want 3s", got)
		}
	})
}

func TestSleepCanceled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(time.Second, cancel)
		start := time.Now()
		if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
			t.Fatalf("Sleep = %v; want context.Canceled", err)
		}
		if got := time.Since(start); got != time.Second {
			t.Errorf("returned after %v; want 1s, when ctx ended", got)
		}
	})
}

func TestSleepNonPositive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		for _, d := range []time.Duration{0, -time.Second} {
			if err := Sleep(context.Background(), d); err != nil {
				t.Errorf("Sleep(%v) = %v; want nil", d, err)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := Sleep(ctx, 0); !errors.Is(err, context.Canceled) {
			t.Errorf("Sleep(done ctx, 0) = %v; want context.Canceled", err)
		}
		if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
			t.Errorf("Sleep(done ctx, 1h) = %v; want context.Canceled", err)
		}
		if got := time.Since(start); got != 0 {
			t.Errorf("took %v; want no time", got)
		}
	})
}

func TestSleepUntil(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if err := SleepUntil(context.Background(), start.Add(2*time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := SleepUntil(context.Background(), start); err != nil {
			t.Fatal(err)
		}
		if got := time.Since(start); got != 2*time.Second {
			t.Errorf("slept %v; want 2s (a past instant does not wait)", got)
		}
	})
}

func TestInBubble(t *testing.T) {
	if InBubble(time.Now()) {
		t.Error("InBubble(time.Now()) outside a bubble = true; want false")
	}
	synctest.Test(t, func(t *testing.T) {
		if !InBubble(time.Now()) {
			t.Error("InBubble(time.Now()) inside a bubble = false; want true")
		}
	})
}
