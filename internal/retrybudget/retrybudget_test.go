package retrybudget

import (
	"sync"
	"testing"
	"time"
)

func TestWindow(t *testing.T) {
	b := New(DefaultRatio, DefaultWindow, DefaultMinPerSecond) // floor 30
	now := time.Unix(1_700_000_000, 0)
	for range 100 {
		b.Request(now)
	}
	got := 0
	for b.Withdraw(now) {
		got++
	}
	if got != 50 { // 20 % of 100, plus the floor
		t.Errorf("resends allowed for 100 requests = %d; want 50", got)
	}
	if b.Withdraw(now.Add(5 * time.Second)) {
		t.Error("resend allowed mid-window after the budget was spent")
	}
	got = 0
	for b.Withdraw(now.Add(DefaultWindow)) {
		got++
	}
	if got != 30 {
		t.Errorf("resends a window later = %d; want the floor 30", got)
	}
}

func TestConcurrent(t *testing.T) {
	b := New(0.5, time.Second, 0)
	now := time.Unix(1_700_000_000, 0)
	for range 100 {
		b.Request(now)
	}
	var mu sync.Mutex
	got := 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if b.Withdraw(now) {
					mu.Lock()
					got++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if got != 50 {
		t.Errorf("resends withdrawn concurrently = %d; want 50", got)
	}
}
