package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outboundhttp/outbound/internal/contracttest"
)

// The tests that measure injected waits run in testing/synctest bubbles: the
// clock moves only while the Transport waits, so the time a call took is
// exactly the wait it met.

func TestTransportLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := &fakeBase{text: "ok"}
		tr := NewTransport(base,
			WithFaults(Latency(50*time.Millisecond), LatencyUniform(10*time.Millisecond, 20*time.Millisecond)))
		for i := range 50 {
			req, _ := newReq(t, context.Background(), "http://a.example/")
			start := time.Now()
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if d := time.Since(start); d < 60*time.Millisecond || d > 70*time.Millisecond {
				t.Fatalf("request %d waited %v; want within [60ms, 70ms] (both latencies, added)", i, d)
			}
		}
		st := tr.Stats()
		if st.Requests != 50 || st.Fired[KindLatency] != 100 {
			t.Fatalf("stats %+v; want 50 requests and 100 latency faults", st)
		}
	})
}

func TestTransportLatencyFunc(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := NewTransport(&fakeBase{}, WithFaults(LatencyFunc(func(r *rand.Rand) time.Duration {
			return time.Duration(r.ExpFloat64() * float64(time.Millisecond))
		})))
		waited := 0
		for range 20 {
			req, _ := newReq(t, context.Background(), "http://a.example/")
			start := time.Now()
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if time.Since(start) > 0 {
				waited++
			}
		}
		if waited < 15 { // a draw of exactly 0 does not wait
			t.Fatalf("%d calls waited; want about 20", waited)
		}
	})
}

func TestTransportLatencyHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := &fakeBase{}
		tr := NewTransport(base, WithFaults(Latency(time.Hour)))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		req, rb := newReq(t, ctx, "http://a.example/")
		start := time.Now()
		resp, err := tr.RoundTrip(req)
		if resp != nil || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got (%v, %v); want (nil, deadline exceeded)", resp, err)
		}
		if el := time.Since(start); el != 20*time.Millisecond {
			t.Fatalf("took %v; want 20ms, the deadline", el)
		}
		if !rb.closed.Load() || base.calls.Load() != 0 {
			t.Fatalf("request body closed %v, next called %d times; want true, 0", rb.closed.Load(), base.calls.Load())
		}
	})
}

func TestTransportStatusProbability(t *testing.T) {
	base := &fakeBase{text: "ok"}
	tr := NewTransport(base, WithSeed(7), WithFaults(Status(503).WithProbability(0.3).WithHeader("Retry-After", "1")))
	const n = 1000
	var injected int
	for range n {
		req, rb := newReq(t, context.Background(), "http://a.example/")
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if !rb.closed.Load() {
			t.Fatal("request body not closed")
		}
		if resp.StatusCode == 503 {
			injected++
			checkWellFormed(t, req, resp)
			if got := resp.Header.Get("Retry-After"); got != "1" {
				t.Fatalf("Retry-After %q; want 1", got)
			}
		}
		resp.Body.Close()
	}
	if injected < 230 || injected > 370 {
		t.Fatalf("%d of %d injected; want about 300", injected, n)
	}
	if int(base.calls.Load()) != n-injected {
		t.Fatalf("next called %d times; want %d (not for injected answers)", base.calls.Load(), n-injected)
	}
}

func checkWellFormed(t *testing.T, req *http.Request, resp *http.Response) {
	t.Helper()
	if resp.Request != req || resp.Proto != "HTTP/1.1" || resp.ProtoMajor != 1 || resp.Header == nil || resp.Body == nil {
		t.Fatalf("malformed response %+v", resp)
	}
	if resp.Status != fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode)) {
		t.Fatalf("Status %q does not match StatusCode %d", resp.Status, resp.StatusCode)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || int64(len(b)) != resp.ContentLength {
		t.Fatalf("body of %d bytes (%v); ContentLength %d", len(b), err, resp.ContentLength)
	}
}

func TestTransportBurst(t *testing.T) {
	tr := NewTransport(&fakeBase{}, WithFaults(Burst(3, 1500*time.Millisecond)))
	var got []string
	for range 5 {
		req, _ := newReq(t, context.Background(), "http://a.example/")
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d:%s", resp.StatusCode, resp.Header.Get("Retry-After")))
		resp.Body.Close()
	}
	want := []string{"429:2", "429:2", "429:2", "200:", "200:"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v; want %v", got, want)
	}
}

func TestTransportOutageWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := NewTransport(&fakeBase{}, WithFaults(Outage(time.Second, 3*time.Second)))
		status := func() int {
			req, _ := newReq(t, context.Background(), "http://a.example/")
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		steps := []struct {
			advance time.Duration
			want    int
		}{{0, 200}, {999 * time.Millisecond, 200}, {time.Millisecond, 503}, {1999 * time.Millisecond, 503}, {time.Millisecond, 200}}
		for i, s := range steps {
			time.Sleep(s.advance)
			if got := status(); got != s.want {
				t.Fatalf("step %d: status %d; want %d", i, got, s.want)
			}
		}
		tr.Restart()
		time.Sleep(time.Second)
		if got := status(); got != 503 {
			t.Fatalf("after Restart and 1s: status %d; want 503", got)
		}
	})
}

func TestTransportConnReset(t *testing.T) {
	base := &fakeBase{}
	tr := NewTransport(base, WithFaults(ConnReset().Times(1), ConnReset().AfterDelivery()))
	for i, wantCalls := range []int32{0, 1} {
		req, rb := newReq(t, context.Background(), "http://a.example:8080/")
		resp, err := tr.RoundTrip(req)
		if resp != nil || err == nil {
			t.Fatalf("%d: got (%v, %v); want (nil, reset)", i, resp, err)
		}
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("%d: %v does not match syscall.ECONNRESET", i, err)
		}
		var ne net.Error
		var oe *net.OpError
		if !errors.As(err, &ne) || !errors.As(err, &oe) || oe.Addr.String() != "a.example:8080" {
			t.Fatalf("%d: %v is not a *net.OpError for a.example:8080", i, err)
		}
		if !strings.Contains(err.Error(), "connection reset by peer") {
			t.Fatalf("%d: message %q", i, err)
		}
		if !rb.closed.Load() || base.calls.Load() != wantCalls {
			t.Fatalf("%d: body closed %v, next called %d times; want true, %d", i, rb.closed.Load(), base.calls.Load(), wantCalls)
		}
	}
	if !base.bodies[0].closed.Load() {
		t.Fatal("the delivered request's response was not closed")
	}
}

func TestTransportHang(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, delivered := range []bool{false, true} {
			base := &fakeBase{}
			f := Hang()
			if delivered {
				f = f.AfterDelivery()
			}
			tr := NewTransport(base, WithFaults(f))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
			req, rb := newReq(t, ctx, "http://a.example/")
			start := time.Now()
			resp, err := tr.RoundTrip(req)
			cancel()
			if resp != nil || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("delivered=%v: got (%v, %v); want (nil, deadline exceeded)", delivered, resp, err)
			}
			if el := time.Since(start); el != 30*time.Millisecond {
				t.Fatalf("delivered=%v: returned after %v; want 30ms, when the context ended", delivered, el)
			}
			if !rb.closed.Load() {
				t.Fatalf("delivered=%v: request body not closed", delivered)
			}
			if delivered && (base.calls.Load() != 1 || !base.bodies[0].closed.Load()) {
				t.Fatal("delivered hang: next not called or its response not closed")
			}
		}
	})
}

func TestTransportStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := &fakeBase{text: "hello world"}
		tr := NewTransport(base, WithFaults(Stall(5)))

		// Close unblocks a pending read.
		req, _ := newReq(t, context.Background(), "http://a.example/")
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, err := io.ReadFull(resp.Body, buf[:5])
		if n != 5 || err != nil || string(buf[:5]) != "hello" {
			t.Fatalf("first read %q, %v; want hello", buf[:n], err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := resp.Body.Read(buf)
			done <- err
		}()
		select {
		case err := <-done:
			t.Fatalf("read past the stall returned %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		resp.Body.Close()
		select {
		case err := <-done:
			if !errors.Is(err, ErrBodyClosed) {
				t.Fatalf("read after Close: %v; want ErrBodyClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not unblock the stalled read")
		}
		if !base.bodies[0].closed.Load() {
			t.Fatal("underlying body not closed")
		}

		// The request's context ends a stall.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		req, _ = newReq(t, ctx, "http://a.example/")
		resp, err = tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "hello" || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %q, %v; want hello, deadline exceeded", b, err)
		}
	})
}

func TestTransportTrickle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := &fakeBase{text: "hello world"}
		tr := NewTransport(base, WithFaults(Trickle(3, 10*time.Millisecond)))
		req, _ := newReq(t, context.Background(), "http://a.example/")
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got []string
		var waits []time.Duration
		buf := make([]byte, 64)
		for {
			start := time.Now()
			n, err := resp.Body.Read(buf)
			waits = append(waits, time.Since(start))
			if n > 0 {
				got = append(got, string(buf[:n]))
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if want := []string{"hel", "lo ", "wor", "ld"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("chunks %q; want %q", got, want)
		}
		want := []time.Duration{10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond}
		if !reflect.DeepEqual(waits, want) {
			t.Fatalf("reads waited %v; want 5 of 10ms (one per read)", waits)
		}
	})
}

func TestTransportCombinedAndPerHost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := &fakeBase{text: "ok"}
		tr := NewTransport(base, WithFaults(
			Latency(5*time.Millisecond),
			Status(502).ForHost("a.example"),
			Status(504).ForHost("b.example:8443"),
		))
		cases := []struct {
			url  string
			want int
		}{
			{"https://a.example/", 502},
			{"https://A.EXAMPLE:443/", 502},
			{"https://b.example:8443/", 504},
			{"https://b.example:9000/", 200},
			{"https://c.example/", 200},
		}
		for _, c := range cases {
			req, _ := newReq(t, context.Background(), c.url)
			start := time.Now()
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("%s: status %d; want %d", c.url, resp.StatusCode, c.want)
			}
			if d := time.Since(start); d != 5*time.Millisecond {
				t.Errorf("%s: waited %v; want the 5ms latency (latency combines with every answer)", c.url, d)
			}
		}
	})
}

func TestTransportFirstAnswerWinsAndCounts(t *testing.T) {
	tr := NewTransport(&fakeBase{}, WithFaults(Status(500).Times(2), Status(503).Times(2)))
	var got []int
	for range 5 {
		req, _ := newReq(t, context.Background(), "http://a.example/")
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got = append(got, resp.StatusCode)
	}
	// The 503 fault does not use up its count while the 500 fault wins.
	if want := []int{500, 500, 503, 503, 200}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v; want %v", got, want)
	}
}

// outcomes plays n sequential requests through a Transport and describes
// each one's fault.
func outcomes(t *testing.T, seed int64, n int) []string {
	t.Helper()
	tr := NewTransport(&fakeBase{text: "hello"}, WithScenario(Scenario{Seed: seed, Faults: []Fault{
		LatencyUniform(0, 100*time.Millisecond).WithProbability(0.5),
		Status(503).WithProbability(0.1),
		Burst(0, time.Second).WithProbability(0.1),
		ConnReset().WithProbability(0.05),
		Stall(2).WithProbability(0.05),
	}}))
	var out []string
	for i := range n {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := newReq(t, ctx, "http://a.example/")
		start := time.Now()
		resp, err := tr.RoundTrip(req)
		var s string
		if err != nil {
			s = "err"
		} else {
			s = resp.Status
			resp.Body.Close()
		}
		if d := time.Since(start); d > 0 {
			s += fmt.Sprintf("+%v", d)
		}
		cancel()
		out = append(out, fmt.Sprintf("%d:%s", i, s))
	}
	return out
}

func TestTransportReproducible(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := outcomes(t, 42, 200), outcomes(t, 42, 200)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("same seed, different sequences:\n%v\n%v", a, b)
		}
		if c := outcomes(t, 43, 200); reflect.DeepEqual(a, c) {
			t.Fatal("different seeds gave the same sequence")
		}
	})
}

func TestTransportConcurrent(t *testing.T) {
	base := &fakeBase{text: "hello"}
	tr := NewTransport(base, WithFaults(Status(503).WithProbability(0.5), Trickle(2, 0)))
	errc := make(chan error, 16)
	for range 16 {
		go func() {
			var err error
			for range 50 {
				req, _ := newReq(t, context.Background(), "http://a.example/")
				resp, rerr := tr.RoundTrip(req)
				if rerr != nil {
					err = rerr
					break
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			errc <- err
		}()
	}
	for range 16 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if st := tr.Stats(); st.Requests != 800 {
		t.Fatalf("%d requests; want 800", st.Requests)
	}
}

func TestInvalidFaultsPanic(t *testing.T) {
	bad := []Fault{
		Status(503).WithProbability(1.5),
		Status(42),
		Outage(2*time.Second, time.Second),
		Trickle(0, time.Millisecond),
		Stall(-1),
		Status(503).Times(-1),
		{Kind: Kind(99)},
	}
	for _, f := range bad {
		func() {
			defer func() {
				r := recover()
				if s, _ := r.(string); !strings.HasPrefix(s, "chaos: NewTransport: Fault[0]") {
					t.Errorf("%v: panic %v; want a chaos: message", f, r)
				}
			}()
			NewTransport(nil, WithFaults(f))
		}()
	}
}

func TestMiddlewareAndNilNext(t *testing.T) {
	rt := Middleware(WithFaults(Status(418)))(nil)
	req, _ := http.NewRequest(http.MethodGet, "http://a.example/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil || resp.StatusCode != 418 {
		t.Fatalf("got (%v, %v); want 418", resp, err)
	}
	resp.Body.Close()
	if tr := NewTransport(nil); tr.next != http.DefaultTransport {
		t.Fatal("nil next is not http.DefaultTransport")
	}
}

func TestTransportNextErrorAndUpgrade(t *testing.T) {
	boom := errors.New("boom")
	tr := NewTransport(contracttest.RoundTripFunc(func(*http.Request) (*http.Response, error) { return nil, boom }),
		WithFaults(Stall(0)))
	req, _ := newReq(t, context.Background(), "http://a.example/")
	if resp, err := tr.RoundTrip(req); resp != nil || !errors.Is(err, boom) {
		t.Fatalf("got (%v, %v); want (nil, boom)", resp, err)
	}

	// A 101 body is the upgraded connection, an io.Writer: never slowed.
	conn := &rwc{}
	tr = NewTransport(contracttest.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 101, Header: http.Header{}, Body: conn, Request: req}, nil
	}), WithFaults(Stall(0)))
	req, _ = newReq(t, context.Background(), "http://a.example/")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := resp.Body.(io.Writer); !ok {
		t.Fatal("101 body lost io.Writer")
	}
}

type rwc struct{}

func (*rwc) Read([]byte) (int, error)    { return 0, io.EOF }
func (*rwc) Write(p []byte) (int, error) { return len(p), nil }
func (*rwc) Close() error                { return nil }

func TestTransportStatusWithoutContent(t *testing.T) {
	for _, c := range []struct {
		method string
		status int
	}{{http.MethodGet, 204}, {http.MethodGet, 304}, {http.MethodHead, 503}} {
		tr := NewTransport(&fakeBase{}, WithFaults(Status(c.status)))
		req, _ := http.NewRequest(c.method, "http://a.example/", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Body != http.NoBody || resp.ContentLength != 0 {
			t.Errorf("%s %d: body %T length %d; want NoBody, 0", c.method, c.status, resp.Body, resp.ContentLength)
		}
	}
}

func TestServerStatusWithoutContent(t *testing.T) {
	s := NewServer(Scenario{Faults: []Fault{Status(204)}})
	url, c := startServer(t, s, true)
	resp, err := do(t, c, context.Background(), http.MethodGet, url, "")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 204 || len(b) != 0 {
		t.Fatalf("got %d with %d bytes; want 204 with none", resp.StatusCode, len(b))
	}
}
