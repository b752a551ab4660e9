package budget

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/outboundhttp/outbound/internal/contracttest"
)

// slowUpstream answers after d, or returns as soon as the request context is
// done (the client went away), so the server shuts down cleanly.
func slowUpstream(d time.Duration) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(d):
			io.WriteString(w, "late")
		case <-r.Context().Done():
		}
	}))
}

// client returns a client over its own *http.Transport with the budget
// layers around it, and a cleanup that closes its idle connections.
func client(t *testing.T, wrap func(http.RoundTripper) http.RoundTripper) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: wrap(tr)}
}

func get(ctx context.Context, c *http.Client, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	return c.Do(req)
}

func TestE2EBudgetOverSlowUpstream(t *testing.T) {
	srv := slowUpstream(time.Second)
	defer srv.Close()
	c := client(t, Middleware(WithTotal(300*time.Millisecond)))
	start := time.Now()
	resp, err := get(context.Background(), c, srv.URL)
	elapsed := time.Since(start)
	if resp != nil {
		resp.Body.Close()
		t.Fatalf("got a response (%d); want the budget to run out", resp.StatusCode)
	}
	var ee *ExhaustedError
	if !errors.Is(err, ErrExhausted) || !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ee) || ee.LocalRefusal() {
		t.Fatalf("err %v; want ErrExhausted (not a local refusal)", err)
	}
	if elapsed < 280*time.Millisecond || elapsed > 900*time.Millisecond {
		t.Errorf("call took %v; want about 300ms", elapsed)
	}
}

func TestE2EBodyReadAfterRoundTrip(t *testing.T) {
	const chunks = 5
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range chunks {
			fmt.Fprintf(w, "chunk%d;", i)
			w.(http.Flusher).Flush()
			select {
			case <-time.After(40 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	}))
	defer srv.Close()

	t.Run("read slowly within the budget", func(t *testing.T) {
		c := client(t, Middleware(WithTotal(5*time.Second)))
		start := time.Now()
		resp, err := get(context.Background(), c, srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		headers := time.Since(start)
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("body read failed after RoundTrip returned (premature cancel?): %v", err)
		}
		if want := "chunk0;chunk1;chunk2;chunk3;chunk4;"; string(b) != want {
			t.Errorf("body %q; want %q", b, want)
		}
		if total := time.Since(start); total < headers+100*time.Millisecond {
			t.Errorf("body arrived with the headers (%v, %v): the test did not read after RoundTrip", headers, total)
		}
	})
	t.Run("the budget still bounds the body", func(t *testing.T) {
		c := client(t, Middleware(WithTotal(100*time.Millisecond)))
		resp, err := get(context.Background(), c, srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("reading past the budget: err %v; want context.DeadlineExceeded", err)
		}
	})
}

func TestE2EParentDeadlineWins(t *testing.T) {
	srv := slowUpstream(time.Second)
	defer srv.Close()
	c := client(t, Middleware(WithTotal(10*time.Second)))
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := get(ctx, c, srv.URL)
	elapsed := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrExhausted) {
		t.Errorf("err %v; want the caller's context.DeadlineExceeded, not ErrExhausted", err)
	}
	if elapsed < 130*time.Millisecond || elapsed > 700*time.Millisecond {
		t.Errorf("call took %v; want about 150ms", elapsed)
	}
}

func TestE2ECanceledParent(t *testing.T) {
	srv := slowUpstream(time.Second)
	defer srv.Close()
	c := client(t, Middleware(WithTotal(300*time.Millisecond)))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := get(ctx, c, srv.URL)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrExhausted) {
		t.Errorf("err %v; want context.Canceled, not ErrExhausted", err)
	}
}

// retrying is a fake retry layer: it resends a request up to n times while
// the upstream answers 503, draining and closing the discarded responses.
func retrying(n int) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper {
		return contracttest.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			for i := 1; ; i++ {
				resp, err := next.RoundTrip(req.Clone(req.Context()))
				if err != nil || resp.StatusCode != http.StatusServiceUnavailable || i == n {
					return resp, err
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}

func TestE2EHeaderShrinksAcrossAttempts(t *testing.T) {
	type seen struct {
		header    int64
		remaining time.Duration
		deadline  time.Time
		hasDL     bool
		at        time.Time // when the handler ran (after Handler read its clock)
	}
	var mu sync.Mutex
	var got []seen
	srv := httptest.NewServer(Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		rem, _ := Remaining(r.Context())
		dl, has := r.Context().Deadline()
		ms, _ := strconv.ParseInt(r.Header.Get(DefaultDeadlineHeader), 10, 64)
		mu.Lock()
		got = append(got, seen{header: ms, remaining: rem, deadline: dl, hasDL: has, at: at})
		n := len(got)
		mu.Unlock()
		time.Sleep(30 * time.Millisecond) // upstream latency, so the budget visibly shrinks
		if n < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})))
	defer srv.Close()

	var clientDL time.Time   // the deadline the budget gave the call
	var computed []time.Time // when each header value was computed
	c := client(t, func(base http.RoundTripper) http.RoundTripper {
		capture := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			clientDL, _ = r.Context().Deadline()
			return base.RoundTrip(r)
		})
		// Record when each attempt reached the DeadlineTransport, just
		// before it computed the header value.
		propagate := NewDeadlineTransport(capture)
		stamp := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			mu.Lock()
			computed = append(computed, time.Now())
			mu.Unlock()
			return propagate.RoundTrip(r)
		})
		return NewTransport(retrying(3)(stamp), WithTotal(2*time.Second))
	})
	resp, err := get(context.Background(), c, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if resp.StatusCode != 200 || len(got) != 3 {
		t.Fatalf("status %d after %d attempts; want 200 after 3", resp.StatusCode, len(got))
	}
	for i, s := range got {
		if !s.hasDL {
			t.Fatalf("attempt %d: no deadline on the inbound request", i)
		}
		if s.header <= 0 || s.header > 2000-5 {
			t.Errorf("attempt %d: header %dms; want in (0, 1995]", i, s.header)
		}
		if i > 0 && s.header > got[i-1].header-25 {
			t.Errorf("attempt %d: header %dms after %dms; want it to shrink by the ~30ms the previous attempt took", i, s.header, got[i-1].header)
		}
		if d := time.Duration(s.header)*time.Millisecond - s.remaining; d < 0 || d > 15*time.Millisecond {
			t.Errorf("attempt %d: handler's remaining %v vs header %dms: off by %v; want within a few ms", i, s.remaining, s.header, d)
		}
		// Same clock on both ends here: the inbound deadline exceeds the
		// caller's deadline minus the safety margin by no more than the
		// time the request took to reach the handler (which the margin is
		// there to absorb).
		transit := s.at.Sub(computed[i])
		if late := s.deadline.Sub(clientDL.Add(-DefaultSafetyMargin)); late > transit {
			t.Errorf("attempt %d: inbound deadline %v after the caller's deadline minus the margin; transit was %v", i, late, transit)
		}
	}
}

func TestE2EInboundBudgetReachesOutbound(t *testing.T) {
	b := slowUpstream(time.Second)
	defer b.Close()
	c := client(t, Middleware())
	outErrs := make(chan error, 1)
	a := httptest.NewServer(Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := get(r.Context(), c, b.URL)
		if err == nil {
			resp.Body.Close()
		}
		outErrs <- err
	})))
	defer a.Close()
	req, _ := http.NewRequest(http.MethodGet, a.URL, nil)
	req.Header.Set(DefaultDeadlineHeader, "150")
	start := time.Now()
	resp, err := client(t, func(rt http.RoundTripper) http.RoundTripper { return rt }).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	elapsed := time.Since(start)
	if outErr := <-outErrs; !errors.Is(outErr, ErrExhausted) {
		t.Errorf("service A's outbound call: err %v; want ErrExhausted (the propagated budget ran out)", outErr)
	}
	if elapsed < 130*time.Millisecond || elapsed > 800*time.Millisecond {
		t.Errorf("call through A took %v; want about 150ms", elapsed)
	}
}

func TestE2EHostileHeadersIgnored(t *testing.T) {
	var mu sync.Mutex
	var has []bool
	srv := httptest.NewServer(Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, ok := r.Context().Deadline()
		mu.Lock()
		has = append(has, ok)
		mu.Unlock()
	})))
	defer srv.Close()
	c := client(t, func(rt http.RoundTripper) http.RoundTripper { return rt })
	values := []string{"-5", "1e30", "abc", strings.Repeat("7", 10<<10), "1.5", "100000000000000000000"}
	for _, v := range values {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set(DefaultDeadlineHeader, v)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	for i, ok := range has {
		if ok {
			t.Errorf("value %.20q set a deadline; want it ignored", values[i])
		}
	}
	if len(has) != len(values) {
		t.Errorf("%d requests served; want %d", len(has), len(values))
	}
}

// TestE2ENoLeaks closes bodies without reading them: every derived context
// must be canceled (its timer stopped) and no goroutine may remain.
func TestE2ENoLeaks(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 64<<10))
	}))
	var mu sync.Mutex
	var ctxs []context.Context
	tr := &http.Transport{}
	capture := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		ctxs = append(ctxs, r.Context())
		mu.Unlock()
		return tr.RoundTrip(r)
	})
	c := &http.Client{Transport: NewTransport(NewDeadlineTransport(capture), WithTotal(5*time.Second))}
	for range 20 {
		resp, err := get(context.Background(), c, srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close() // unread
	}
	for i, ctx := range ctxs {
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Errorf("call %d: context not released after Close: %v", i, ctx.Err())
		}
	}
	tr.CloseIdleConnections()
	srv.Close()
	goleak.VerifyNone(t)
}
