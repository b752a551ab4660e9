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

// TestConcurrentRequests: requests recorded from many goroutines at once, some
// of them in a new bucket, are all counted (Request takes no lock).
func TestConcurrentRequests(t *testing.T) {
	b := New(1, time.Second, 0) // one resend per request, no floor
	now := time.Unix(1_700_000_000, 0)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				// Half the goroutines are a bucket later: the first of
				// them resets the bucket it reuses while others count.
				b.Request(now.Add(time.Duration(g%2) * 100 * time.Millisecond).Add(time.Duration(i)))
			}
		})
	}
	wg.Wait()
	got := 0
	for b.Withdraw(now.Add(100 * time.Millisecond)) {
		got++
	}
	if got != 400 {
		t.Errorf("resends allowed after 400 concurrent requests at ratio 1 = %d; want 400", got)
	}
}

// TestBucketReuse: a bucket reused a window later starts from zero, for
// requests and resends alike.
func TestBucketReuse(t *testing.T) {
	b := New(1, time.Second, 0)
	now := time.Unix(1_700_000_000, 0)
	for range 10 {
		b.Request(now)
	}
	if !b.Withdraw(now) {
		t.Fatal("no resend for 10 requests at ratio 1")
	}
	later := now.Add(time.Second) // the same bucket, a window later
	b.Request(later)
	got := 0
	for b.Withdraw(later) {
		got++
	}
	if got != 1 {
		t.Errorf("resends a window later for 1 request = %d; want 1", got)
	}
}

// BenchmarkRequest is every core recording requests to one upstream at once
// (run it at -cpu 1,2): the clock is read once, so the figure is the
// counter's own cost and contention.
func BenchmarkRequest(b *testing.B) {
	bud := New(DefaultRatio, DefaultWindow, DefaultMinPerSecond)
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bud.Request(now)
		}
	})
}

// TestWithdrawShare: a share of the budget is spent only while the window's
// resends, all of them, stay within it; what is left goes on to Withdraw.
func TestWithdrawShare(t *testing.T) {
	b := New(DefaultRatio, DefaultWindow, DefaultMinPerSecond) // floor 30
	now := time.Unix(1_700_000_000, 0)
	for range 100 {
		b.Request(now)
	}
	spare := 0
	for b.WithdrawShare(now, 0.5) {
		spare++
	}
	if spare != 25 { // half of 20 % of 100 plus the floor
		t.Errorf("resends from half the budget = %d; want 25", spare)
	}
	rest := 0
	for b.Withdraw(now) {
		rest++
	}
	if rest != 25 {
		t.Errorf("resends left to Withdraw = %d; want the other 25", rest)
	}
	// Withdraw's resends count against the share too.
	c := New(DefaultRatio, DefaultWindow, DefaultMinPerSecond)
	for range 100 {
		c.Request(now)
	}
	for range 25 {
		c.Withdraw(now)
	}
	if c.WithdrawShare(now, 0.5) {
		t.Error("a half share was withdrawn after retries had spent half the budget")
	}
}
