package circuit_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outboundhttp/outbound/transport/circuit"
	"github.com/outboundhttp/outbound/transport/retry"
)

// TestPartialOutage is the drill the issue asks for: two upstreams, one
// answering 503 to everything. The stack is a total deadline per call (the
// budget layer's job, here a context timeout), retry with its default retry
// budget, and the breaker. Once the breaker of the dead host has opened, at
// most 10 % of the calls offered to it may reach it, and every call to the
// healthy host must succeed. Real time: break duration 250 ms, traffic paced
// by the workers themselves; the assertion is on counts, not on timing.
func TestPartialOutage(t *testing.T) {
	var deadHits, liveHits atomic.Int64
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		deadHits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer dead.Close()
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		liveHits.Add(1)
		io.WriteString(w, "ok")
	}))
	defer live.Close()

	base := http.DefaultTransport.(*http.Transport).Clone()
	defer base.CloseIdleConnections()

	var (
		opened     atomic.Bool
		hitsAtOpen atomic.Int64
		probes     atomic.Int64
	)
	// Composed by hand rather than with outbound.Chain, so the drill depends
	// only on the two packages under test.
	rt := retry.NewTransport(
		circuit.NewTransport(base,
			circuit.WithBreakDuration(250*time.Millisecond),
			circuit.WithOnStateChange(func(key string, from, to circuit.State) {
				if key != dead.URL {
					t.Errorf("breaker of %s changed %v → %v; only the dead host may", key, from, to)
				}
				if to == circuit.Open && opened.CompareAndSwap(false, true) {
					hitsAtOpen.Store(deadHits.Load())
				}
				if to == circuit.HalfOpen {
					probes.Add(1)
				}
			}),
		),
		retry.WithBackoff(time.Millisecond, 5*time.Millisecond),
	)
	client := &http.Client{Transport: rt}

	call := func(url string) (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second) // total budget
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}

	const workers, rounds = 4, 150
	var (
		offeredOpen, refused atomic.Int64
		wg                   sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for range rounds {
				wasOpen := opened.Load()
				_, err := call(dead.URL)
				if wasOpen {
					offeredOpen.Add(1)
				}
				if errors.Is(err, circuit.ErrOpen) {
					refused.Add(1)
				}
				if code, err := call(live.URL); err != nil || code != 200 {
					t.Errorf("healthy host: got %d, %v; want 200", code, err)
				}
				time.Sleep(2 * time.Millisecond) // pacing: offered load, not an assertion
			}
		})
	}
	wg.Wait()

	if !opened.Load() {
		t.Fatal("the breaker of the dead host never opened")
	}
	sentOpen := deadHits.Load() - hitsAtOpen.Load()
	share := float64(sentOpen) / float64(offeredOpen.Load())
	t.Logf("dead host: %d calls offered once open, %d reached it (%.1f %%), %d probes, %d refused with ErrOpen; %d hits before opening",
		offeredOpen.Load(), sentOpen, 100*share, probes.Load(), refused.Load(), hitsAtOpen.Load())
	t.Logf("healthy host: %d calls, %d hits, all 200", workers*rounds, liveHits.Load())
	if offeredOpen.Load() < workers*rounds/2 {
		t.Fatalf("only %d calls offered once open; the breaker opened too late", offeredOpen.Load())
	}
	if share > 0.10 {
		t.Fatalf("%.1f %% of the calls offered to the dead host once open reached it; want ≤ 10 %%", 100*share)
	}
	if got := liveHits.Load(); got != workers*rounds {
		t.Fatalf("healthy host saw %d requests; want %d (no retries, no refusals)", got, workers*rounds)
	}
}
