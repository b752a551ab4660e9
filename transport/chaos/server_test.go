package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// startServer starts s and returns its URL and a client of its own, both
// cleaned up at the end of the test.
func startServer(t *testing.T, s *Server, keepAlive bool) (string, *http.Client) {
	t.Helper()
	url, err := s.Start()
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{DisableKeepAlives: !keepAlive}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return url, &http.Client{Transport: tr}
}

func do(t *testing.T, c *http.Client, ctx context.Context, method, url, body string, hdr ...string) (*http.Response, error) {
	t.Helper()
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rb)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return c.Do(req)
}

func TestServerRecords(t *testing.T) {
	s := NewServer(Scenario{Faults: []Fault{Status(503).Times(2)}})
	url, c := startServer(t, s, true)
	start := time.Now()
	for i := range 3 {
		resp, err := do(t, c, context.Background(), http.MethodPost, url+"/orders", "{}",
			"X-Request-ID", "call-1", "X-Attempt", strconv.Itoa(i), "Idempotency-Key", "k1")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	resp, err := do(t, c, context.Background(), http.MethodGet, url+"/health", "")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "{\"status\":\"ok\"}\n" {
		t.Fatalf("healthy body %q", b)
	}
	end := time.Now()

	recs := s.Records()
	if len(recs) != 4 {
		t.Fatalf("%d records; want 4", len(recs))
	}
	for i, r := range recs {
		if r.Seq != i {
			t.Errorf("record %d has Seq %d", i, r.Seq)
		}
		if r.Time.Before(start) || r.Time.After(end) || r.Answered.Before(r.Time) {
			t.Errorf("record %d: time %v answered %v outside [%v, %v]", i, r.Time, r.Answered, start, end)
		}
		if i > 0 && r.Time.Before(recs[i-1].Time) {
			t.Errorf("record %d arrived before record %d", i, i-1)
		}
	}
	var got []string
	for _, r := range recs {
		got = append(got, fmt.Sprintf("%s %s id=%s attempt=%d key=%s body=%d/%t status=%d fault=%s",
			r.Method, r.Path, r.RequestID, r.Attempt, r.IdempotencyKey, r.BodyLen, r.BodyHash != "", r.Status, r.Fault))
	}
	want := []string{
		"POST /orders id=call-1 attempt=0 key=k1 body=2/true status=503 fault=status",
		"POST /orders id=call-1 attempt=1 key=k1 body=2/true status=503 fault=status",
		"POST /orders id=call-1 attempt=2 key=k1 body=2/true status=200 fault=none",
		"GET /health id= attempt=-1 key= body=0/false status=200 fault=none",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if recs[0].BodyHash != recs[1].BodyHash {
		t.Fatal("same body, different hashes")
	}
	rep := Analyze(recs, 2)
	if rep.Requests != 4 || rep.Amplification != 2 || rep.Answers["503"] != 2 || rep.Answers["200"] != 2 || rep.DuplicateDeliveries != 0 {
		t.Fatalf("report %+v", rep)
	}
	if st := s.Stats(); st.Requests != 4 || st.Fired[KindStatus] != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestServerCustomHeadersAndHandler(t *testing.T) {
	s := NewServer(Scenario{}, WithRequestIDHeader("X-Trace"), WithAttemptHeader("X-Envoy-Attempt-Count"),
		WithHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body) // the server read the body first; the handler still sees it
			w.WriteHeader(http.StatusCreated)
			w.Write(b)
		})))
	url, c := startServer(t, s, true)
	resp, err := do(t, c, context.Background(), http.MethodPut, url+"/x", "echo", "X-Trace", "t1", "X-Envoy-Attempt-Count", "3")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || string(b) != "echo" {
		t.Fatalf("got %d %q; want 201 echo", resp.StatusCode, b)
	}
	r := s.Records()[0]
	if r.RequestID != "t1" || r.Attempt != 3 || r.Status != 201 {
		t.Fatalf("record %+v", r)
	}
}

func TestServerRetryAfter(t *testing.T) {
	s := NewServer(Scenario{Faults: []Fault{Burst(1, time.Second)}})
	url, c := startServer(t, s, true)
	for range 2 {
		resp, err := do(t, c, context.Background(), http.MethodGet, url, "", "X-Request-ID", "a")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	recs := s.Records()
	p := recs[0]
	if p.Status != 429 || p.RetryAfter != time.Second || !p.NotBefore.Equal(p.Answered.Add(time.Second)) {
		t.Fatalf("pushback record %+v", p)
	}
	if !recs[1].NotBefore.IsZero() {
		t.Fatal("healthy answer has a NotBefore")
	}
	// The second request came back at once: impolite, by ID and for the server.
	for _, key := range []func(Record) string{ByRequestID, ByServer} {
		v := PolitenessViolations(recs, key)
		if len(v) != 1 || v[0].Request.Seq != 1 || v[0].Pushback.Seq != 0 {
			t.Fatalf("violations %+v; want request 1 against pushback 0", v)
		}
	}
}

func TestServerReset(t *testing.T) {
	s := NewServer(Scenario{Faults: []Fault{ConnReset().Times(1)}})
	url, c := startServer(t, s, false)
	resp, err := do(t, c, context.Background(), http.MethodPost, url, "x", "X-Request-ID", "r1")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got %s; want a connection error", resp.Status)
	}
	// SO_LINGER 0 makes the close an RST: the client reads ECONNRESET, not EOF.
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("error %v; want a connection reset", err)
	}
	t.Logf("client saw: %v", err)
	resp, err = do(t, c, context.Background(), http.MethodPost, url, "x", "X-Request-ID", "r1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	recs := s.Records()
	if len(recs) != 2 || recs[0].Fault != KindReset || recs[0].Status != 0 || recs[1].Status != 200 {
		t.Fatalf("records %+v", recs)
	}
	if d := DuplicateDeliveries(recs); len(d) != 1 || d[0].Seq != 1 {
		t.Fatalf("duplicates %+v; want the second POST", d)
	}
	if rep := Analyze(recs, 1); rep.Answers["reset"] != 1 || rep.DuplicateDeliveries != 1 {
		t.Fatalf("report %+v", rep)
	}
}

func TestServerHangEndsWithClientContext(t *testing.T) {
	s := NewServer(Scenario{Faults: []Fault{Hang()}})
	url, c := startServer(t, s, true)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	resp, err := do(t, c, ctx, http.MethodGet, url, "")
	if err == nil {
		resp.Body.Close()
		t.Fatal("hang answered")
	}
	if el := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || el < 90*time.Millisecond || el > 5*time.Second {
		t.Fatalf("got %v after %v; want deadline exceeded after about 100ms", err, el)
	}
	recs := s.Records()
	if len(recs) != 1 || recs[0].Fault != KindHang {
		t.Fatalf("records %+v", recs)
	}
}

func TestServerCloseReleasesHangs(t *testing.T) {
	s := NewServer(Scenario{Faults: []Fault{Hang()}})
	url, err := s.Start()
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	errc := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Transport: tr}).Get(url)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	for len(s.Records()) == 0 {
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return while a request hung")
	}
	if err := <-errc; err == nil {
		t.Fatal("the hanging request succeeded")
	}
	if _, err := s.Start(); err == nil {
		t.Fatal("Start after Close succeeded")
	}
}

func TestServerStall(t *testing.T) {
	body := strings.Repeat("x", 64)
	s := NewServer(Scenario{Faults: []Fault{Stall(4)}}, WithHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, body)
	})))
	url, c := startServer(t, s, true)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	resp, err := do(t, c, ctx, http.MethodGet, url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != 64 {
		t.Fatalf("got %d with length %d; want 200 with 64", resp.StatusCode, resp.ContentLength)
	}
	b, err := io.ReadAll(resp.Body)
	if string(b) != "xxxx" || err == nil {
		t.Fatalf("read %q, %v; want 4 bytes and then an error", b, err)
	}
	if r := s.Records()[0]; r.Fault != KindStall || r.Status != 200 {
		t.Fatalf("record %+v", r)
	}
}

func TestServerTrickleAndLatency(t *testing.T) {
	s := NewServer(Scenario{Faults: []Fault{Latency(50 * time.Millisecond), Trickle(4, 10*time.Millisecond)}})
	url, c := startServer(t, s, true)
	start := time.Now()
	resp, err := do(t, c, context.Background(), http.MethodGet, url, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	el := time.Since(start)
	if err != nil || string(b) != "{\"status\":\"ok\"}\n" {
		t.Fatalf("body %q, %v", b, err)
	}
	// 50ms latency + 4 chunks of 4 bytes, 10ms apart.
	if el < 85*time.Millisecond || el > 5*time.Second {
		t.Fatalf("took %v; want at least 90ms", el)
	}
	r := s.Records()[0]
	if r.Delay != 50*time.Millisecond || r.Answered.Sub(r.Time) < 45*time.Millisecond || r.Fault != KindTrickle {
		t.Fatalf("record %+v", r)
	}
}

// TestServerOutageWindow plays the Server as a handler in a testing/synctest
// bubble (no sockets: they would not block durably), so the scenario's
// windows pass on the bubble's clock.
func TestServerOutageWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewServer(Scenario{Faults: []Fault{Outage(time.Second, 2*time.Second).WithRetryAfter(time.Second)}})
		defer s.Close()
		var got []int
		for _, adv := range []time.Duration{0, time.Second, 500 * time.Millisecond, 500 * time.Millisecond} {
			time.Sleep(adv)
			w := httptest.NewRecorder()
			s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
			got = append(got, w.Code)
		}
		if want := []int{200, 503, 503, 200}; !reflect.DeepEqual(got, want) {
			t.Fatalf("got %v; want %v", got, want)
		}
		recs := s.Records()
		if !recs[1].NotBefore.Equal(recs[1].Time.Add(time.Second)) {
			t.Fatalf("NotBefore %v; want the arrival + 1s", recs[1].NotBefore)
		}
		// No request ID: nothing attributed by ID. For the server, request 2
		// came 0.5s into request 1's 1s Retry-After, and request 3 came exactly
		// when request 1's elapsed (polite) but 0.5s into request 2's.
		if v := PolitenessViolations(recs, ByRequestID); len(v) != 0 {
			t.Fatalf("by ID: %+v", v)
		}
		v := PolitenessViolations(recs, ByServer)
		if len(v) != 2 || v[0].Request.Seq != 2 || v[0].Pushback.Seq != 1 || v[1].Request.Seq != 3 || v[1].Pushback.Seq != 2 {
			t.Fatalf("by server: %+v", v)
		}
	})
}

// The Server and the Transport play a scenario identically.
func TestServerMatchesTransport(t *testing.T) {
	sc := Scenario{Seed: 9, Faults: []Fault{Status(503).WithProbability(0.2), Burst(0, time.Second).WithProbability(0.2)}}
	s := NewServer(sc)
	url, c := startServer(t, s, true)
	tr := NewTransport(&fakeBase{}, WithScenario(sc))
	for i := range 40 {
		resp, err := do(t, c, context.Background(), http.MethodGet, url, "")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		req, _ := newReq(t, context.Background(), url)
		want, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		want.Body.Close()
		if resp.StatusCode != want.StatusCode {
			t.Fatalf("request %d: server %d, transport %d", i, resp.StatusCode, want.StatusCode)
		}
	}
}

func TestServerAsHandler(t *testing.T) {
	// Mounted in another server, Close still releases hanging requests.
	s := NewServer(Scenario{Faults: []Fault{Hang()}})
	if s.URL() != "" {
		t.Fatal("URL before Start")
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	errc := make(chan error, 1)
	go func() {
		resp, err := ts.Client().Get(ts.URL)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	for len(s.Records()) == 0 {
		time.Sleep(time.Millisecond)
	}
	s.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("the hanging request got an answer")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release the hanging request")
	}
}
