package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outboundhttp/outbound/internal/clock"
)

// workCounter waits as a Transport does (virtually inside a synctest
// bubble) and counts how many waits run at once: with no latency faults,
// those are the requests being worked.
type workCounter struct {
	mu        sync.Mutex
	now, most int
}

func (c *workCounter) sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.now++
	c.most = max(c.most, c.now)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.now--
		c.mu.Unlock()
	}()
	return clock.Sleep(ctx, d)
}

func (c *workCounter) Most() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.most
}

// get makes a GET to url through rt and returns the status (0 on error), the
// (virtual) time since start at which it ended, and the error.
func get(ctx context.Context, rt http.RoundTripper, url string, start time.Time) (int, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return 0, time.Since(start), err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, time.Since(start), nil
}

// Calls that arrive together: at most shedAbove are taken in, the rest are
// shed at once with 503, and at most workers are worked at a time, so the
// last admitted call ends after ceil(admitted/workers) rounds of work.
func TestCapacityShedsAndWorks(t *testing.T) {
	for _, tc := range []struct {
		workers   int
		work      time.Duration
		shedAbove int
		calls     int
	}{
		{1, 10 * time.Millisecond, 1, 3},
		{3, 5 * time.Millisecond, 3, 3},
		{4, 10 * time.Millisecond, 10, 16},
		{16, 10 * time.Millisecond, 48, 60},
		{16, 10 * time.Millisecond, 48, 20},
	} {
		name := fmt.Sprintf("W=%d,D=%v,S=%d,calls=%d", tc.workers, tc.work, tc.shedAbove, tc.calls)
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				clk := &workCounter{}
				tr := NewTransport(&fakeBase{text: "ok"}, withSleep(clk.sleep),
					WithFaults(Capacity(tc.workers, tc.work, tc.shedAbove)))
				start := time.Now()
				type end struct {
					status int
					at     time.Duration
				}
				ends := make(chan end, tc.calls)
				for range tc.calls {
					go func() {
						status, at, err := get(context.Background(), tr, "http://a.example/", start)
						if err != nil {
							t.Errorf("call failed: %v", err)
						}
						ends <- end{status, at}
					}()
				}
				var shed, ok int
				var last time.Duration
				for range tc.calls {
					e := <-ends
					switch e.status {
					case http.StatusServiceUnavailable:
						shed++
						if e.at != 0 {
							t.Errorf("a shed call ended at %v; want at once", e.at)
						}
					case http.StatusOK:
						ok++
						last = max(last, e.at)
					default:
						t.Errorf("got status %d; want 200 or 503", e.status)
					}
				}
				admitted := min(tc.calls, tc.shedAbove)
				rounds := (admitted + tc.workers - 1) / tc.workers
				if want := tc.calls - admitted; shed != want || ok != admitted {
					t.Errorf("got %d shed and %d ok; want %d shed and %d ok", shed, ok, want, admitted)
				}
				if got, want := clk.Most(), min(admitted, tc.workers); got != want {
					t.Errorf("got %d worked at once; want %d", got, want)
				}
				if want := time.Duration(rounds) * tc.work; last != want {
					t.Errorf("got the last call done at %v; want %v", last, want)
				}
				st := tr.Stats()
				if st.Requests != tc.calls || st.Fired[KindCapacity] != shed {
					t.Errorf("got stats %+v; want %d requests, %d capacity", st, tc.calls, shed)
				}
			})
		})
	}
}

// lateSleep waits as a Transport does (virtually inside a synctest bubble),
// every wait overrunning by late, as timers do on a busy machine.
func lateSleep(late time.Duration) sleeper {
	return func(ctx context.Context, d time.Duration) error { return clock.Sleep(ctx, d+late) }
}

// A closed loop of callers, each making call after call: the upstream
// completes workers/work calls per second of virtual time, however many
// callers there are beyond its workers, and sheds only when more than
// shedAbove callers are in flight. With timers that fire late, it still does
// when requests queue; with no queue, the lateness shows as a slower
// upstream.
func TestCapacityThroughput(t *testing.T) {
	const (
		workers   = 16
		work      = 10 * time.Millisecond
		shedAbove = 48
		span      = time.Second
	)
	for _, tc := range []struct {
		callers int
		late    time.Duration
		want    int // calls done in span
	}{
		{8, 0, 8 * 100},
		{16, 0, 16 * 100},
		{48, 0, 16 * 100},
		{200, 0, 16 * 100},
		{8, 3 * time.Millisecond, 8 * 76}, // 1s / 13ms each
		{48, 3 * time.Millisecond, 16 * 100},
		{200, 3 * time.Millisecond, 16 * 100},
	} {
		t.Run(fmt.Sprintf("callers=%d,late=%v", tc.callers, tc.late), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tr := NewTransport(&fakeBase{}, withSleep(lateSleep(tc.late)),
					WithFaults(Capacity(workers, work, shedAbove)))
				start := time.Now()
				var mu sync.Mutex
				var ok, shed int
				var wg sync.WaitGroup
				for range tc.callers {
					wg.Go(func() {
						for time.Since(start) < span {
							status, at, err := get(context.Background(), tr, "http://a.example/", start)
							mu.Lock()
							switch {
							case err != nil:
								t.Errorf("call failed: %v", err)
							case status == http.StatusOK && at <= span:
								ok++
							case status == http.StatusServiceUnavailable:
								shed++
							}
							mu.Unlock()
							if status == http.StatusServiceUnavailable {
								time.Sleep(5 * time.Millisecond) // a shed caller comes back later
							}
						}
					})
				}
				wg.Wait()
				t.Logf("%d callers: %d calls done in %v (%d shed)", tc.callers, ok, span, shed)
				if ok < tc.want*99/100 || ok > tc.want {
					t.Errorf("got %d calls done in %v; want %d (-1%%)", ok, span, tc.want)
				}
				if tc.callers <= shedAbove && shed != 0 {
					t.Errorf("got %d shed with %d callers; want none at most %d in flight", shed, tc.callers, shedAbove)
				}
				if tc.callers > shedAbove && shed == 0 {
					t.Errorf("got none shed with %d callers; want some above %d in flight", tc.callers, shedAbove)
				}
			})
		})
	}
}

// A caller that gives up while queued leaves the queue having taken
// nothing: the next in line waits for a worker to finish, not for the one
// who left. The queue is first come, first served; a newcomer is admitted
// again once the leaver's place in flight is free.
func TestCapacityQueueHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := NewTransport(&fakeBase{}, WithFaults(Capacity(1, time.Second, 3)))
		start := time.Now()
		type end struct {
			name   string
			status int
			err    error
			at     time.Duration
		}
		ends := make(chan end, 8)
		call := func(name string, timeout time.Duration) {
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if timeout > 0 {
				ctx, cancel = context.WithTimeout(ctx, timeout)
			}
			go func() {
				defer cancel()
				status, at, err := get(ctx, tr, "http://a.example/", start)
				ends <- end{name, status, err, at}
			}()
			synctest.Wait() // taken in, or shed, before the next arrives
		}
		call("A", 0)                    // takes the worker: done at 1s
		call("B", 100*time.Millisecond) // queued; leaves at 100ms
		call("C", 0)                    // queued behind B: worked from 1s to 2s
		time.Sleep(150 * time.Millisecond)
		call("D", 0) // B's place in flight is free again: worked from 2s to 3s
		call("E", 0) // A, C and D in flight: shed
		got := map[string]string{}
		for range 5 {
			e := <-ends
			got[e.name] = fmt.Sprintf("%d %v at %v", e.status, e.err, e.at)
		}
		want := map[string]string{
			"A": "200 <nil> at 1s",
			"B": "0 context deadline exceeded at 100ms",
			"C": "200 <nil> at 2s",
			"D": "200 <nil> at 3s",
			"E": "503 <nil> at 150ms",
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %v; want %v", got, want)
		}
	})
}

// A caller that gives up while worked frees its worker at once; callers
// queued before a worker is free are served in the order they came.
func TestCapacityWorkHonoursContextAndFIFO(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := NewTransport(&fakeBase{}, WithFaults(Capacity(1, 100*time.Millisecond, 6)))
		start := time.Now()
		var mu sync.Mutex
		var order []string
		var wg sync.WaitGroup
		for i, name := range []string{"A", "B", "C", "D", "E"} {
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if i == 0 {
				ctx, cancel = context.WithTimeout(ctx, 30*time.Millisecond)
			}
			wg.Go(func() {
				defer cancel()
				status, at, err := get(ctx, tr, "http://a.example/", start)
				mu.Lock()
				order = append(order, fmt.Sprintf("%s %d %v at %v", name, status, err, at))
				mu.Unlock()
			})
			synctest.Wait()
		}
		wg.Wait()
		want := []string{
			"A 0 context deadline exceeded at 30ms", // left while worked: B starts at once
			"B 200 <nil> at 130ms",
			"C 200 <nil> at 230ms",
			"D 200 <nil> at 330ms",
			"E 200 <nil> at 430ms",
		}
		if !reflect.DeepEqual(order, want) {
			t.Errorf("got\n%s\nwant\n%s", strings.Join(order, "\n"), strings.Join(want, "\n"))
		}
	})
}

// A capacity narrowed to a host leaves the others alone; after the work, the
// other faults decide the answer, and a shed request plays and counts none.
func TestCapacityWithOtherFaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := NewTransport(&fakeBase{}, WithFaults(
			Latency(5*time.Millisecond),
			Status(http.StatusInternalServerError).ForHost("a.example"),
			Capacity(1, 10*time.Millisecond, 1).ForHost("a.example").WithRetryAfter(time.Second),
		))
		start := time.Now()
		type end struct {
			status int
			at     time.Duration
		}
		first := make(chan end, 1)
		go func() {
			status, at, _ := get(context.Background(), tr, "http://a.example/", start)
			first <- end{status, at}
		}()
		synctest.Wait()
		var got []string
		req, _ := http.NewRequest(http.MethodGet, "http://a.example/", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got = append(got, fmt.Sprintf("a shed: %d Retry-After=%s at %v", resp.StatusCode, resp.Header.Get("Retry-After"), time.Since(start)))
		status, at, _ := get(context.Background(), tr, "http://b.example/", start)
		got = append(got, fmt.Sprintf("b: %d at %v", status, at))
		e := <-first
		got = append(got, fmt.Sprintf("a admitted: %d at %v", e.status, e.at))
		want := []string{
			"a shed: 503 Retry-After=1 at 0s", // no latency either: shed at once
			"b: 200 at 5ms",
			"a admitted: 500 at 15ms", // 5ms latency, 10ms work, then the Status fault
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %q; want %q", got, want)
		}
		st := tr.Stats()
		if want := map[Kind]int{KindLatency: 2, KindStatus: 1, KindCapacity: 1}; !reflect.DeepEqual(st.Fired, want) {
			t.Errorf("got fired %v; want %v", st.Fired, want)
		}
	})
}

// The Server records a shed request as a 503 from the capacity fault, and a
// request whose client left in the queue as Canceled.
func TestServerCapacity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewServer(Scenario{Faults: []Fault{Capacity(2, 10*time.Millisecond, 3)}})
		defer s.Close()
		serve := func(ctx context.Context) (code int) {
			defer func() {
				if r := recover(); r != nil {
					if r != http.ErrAbortHandler {
						panic(r)
					}
					code = -1 // aborted: no answer
				}
			}()
			w := httptest.NewRecorder()
			s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/x", nil).WithContext(ctx))
			return w.Code
		}
		codes := make(chan int, 6)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		defer cancel()
		go func() { codes <- serve(context.Background()) }()
		go func() { codes <- serve(context.Background()) }()
		synctest.Wait()
		go func() { codes <- serve(ctx) }() // queued: leaves at 5ms
		synctest.Wait()
		for range 2 {
			go func() { codes <- serve(context.Background()) }() // shed
		}
		synctest.Wait()
		got := map[int]int{}
		for range 5 {
			got[<-codes]++
		}
		if want := map[int]int{200: 2, 503: 2, -1: 1}; !reflect.DeepEqual(got, want) {
			t.Errorf("got answers %v; want %v", got, want)
		}
		rep := Analyze(s.Records(), 5)
		if want := map[string]int{"200": 2, "503": 2, "canceled": 1}; !reflect.DeepEqual(rep.Answers, want) {
			t.Errorf("got recorded answers %v; want %v", rep.Answers, want)
		}
		for _, r := range s.Records() {
			if r.Status == http.StatusServiceUnavailable && (r.Fault != KindCapacity || !r.Answered.Equal(r.Time)) {
				t.Errorf("got shed record %+v; want fault capacity, answered on arrival", r)
			}
		}
		if st := s.Stats(); st.Requests != 5 || st.Fired[KindCapacity] != 2 {
			t.Errorf("got stats %+v; want 5 requests, 2 shed", st)
		}
	})
}

// Over a real socket, the shed answer is a well-formed 503 and the admitted
// request still waiting for its work is released by its client leaving.
func TestServerCapacityOverLoopback(t *testing.T) {
	s := NewServer(Scenario{Faults: []Fault{Capacity(1, time.Hour, 1)}})
	url, c := startServer(t, s, true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		resp, err := do(t, c, ctx, http.MethodGet, url, "")
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	for s.Stats().Requests == 0 { // the first request is in flight
		runtime.Gosched()
	}
	resp, err := do(t, c, context.Background(), http.MethodGet, url, "")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || string(b) != "chaos: injected 503 Service Unavailable\n" {
		t.Errorf("got %d %q; want the injected 503", resp.StatusCode, b)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("got %v; want the first call canceled", err)
	}
	s.Close() // waits for the canceled handler, which records it
	var got []string
	for _, r := range s.Records() {
		got = append(got, fmt.Sprintf("%d %s canceled=%t", r.Status, r.Fault, r.Canceled))
	}
	slices.Sort(got)
	if want := []string{"0 none canceled=true", "503 capacity canceled=false"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got records %q; want %q", got, want)
	}
}

func TestCapacityInvalid(t *testing.T) {
	for _, tc := range []struct {
		f    Fault
		want string
	}{
		{Capacity(0, time.Millisecond, 1), "at least 1 worker"},
		{Capacity(1, 0, 1), "positive work time"},
		{Capacity(1, -time.Millisecond, 1), "positive work time"},
		{Capacity(4, time.Millisecond, 3), "fewer than its 4 workers"},
		{Capacity(1, time.Millisecond, 1).WithProbability(0.5), "no probability or count"},
		{Capacity(1, time.Millisecond, 1).Times(3), "no probability or count"},
		{Fault{Kind: KindCapacity, Workers: 1, Work: 1, ShedAbove: 1, Status: 42}, "not a final HTTP status"},
	} {
		for _, build := range []struct {
			name string
			new  func()
		}{
			{"NewTransport", func() { NewTransport(nil, WithFaults(tc.f)) }},
			{"NewServer", func() { NewServer(Scenario{Faults: []Fault{tc.f}}) }},
		} {
			func() {
				defer func() {
					got, _ := recover().(string)
					prefix := "chaos: " + build.name + ": Fault[0] (capacity): "
					if !strings.HasPrefix(got, prefix) || !strings.Contains(got, tc.want) {
						t.Errorf("%s(%v): got panic %q; want %q...%q", build.name, tc.f, got, prefix, tc.want)
					}
				}()
				build.new()
			}()
		}
	}
	for _, f := range []Fault{
		Capacity(1, time.Millisecond, 1),
		Capacity(16, 10*time.Millisecond, 48).WithProbability(1).During(time.Second, 0),
	} {
		NewTransport(nil, WithFaults(f)) // valid: no panic
	}
}

func TestCapacityString(t *testing.T) {
	for _, tc := range []struct {
		f    Fault
		want string
	}{
		{Capacity(16, 10*time.Millisecond, 48), "capacity 16x10ms shed-above=48"},
		{Capacity(2, time.Second, 4).ForHost("a.example"), "capacity 2x1s shed-above=4 host=a.example"},
		{Fault{Kind: KindCapacity, Workers: 1, Work: time.Second, ShedAbove: 1, Status: 429}, "capacity 1x1s shed-above=1 status=429"},
	} {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("got %q; want %q", got, tc.want)
		}
	}
}

func TestKindText(t *testing.T) {
	for k := KindNone; k <= KindCapacity; k++ {
		b, err := k.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var got Kind
		if err := got.UnmarshalText(b); err != nil || got != k {
			t.Errorf("got %v, %v from %q; want %v", got, err, b, k)
		}
	}
	if got := KindCapacity.String(); got != "capacity" {
		t.Errorf("got %q; want capacity", got)
	}
}
