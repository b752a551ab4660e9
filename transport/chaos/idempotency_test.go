package chaos

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// orders is a handler that does "work" per request: it counts the orders it
// created and answers 201 with the order's number.
type orders struct {
	created atomic.Int64
	gate    chan struct{} // when set, the first order closes entered and waits at it
	entered chan struct{}
	once    sync.Once
}

func (o *orders) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := o.created.Add(1)
	if o.gate != nil {
		o.once.Do(func() { close(o.entered); <-o.gate })
	}
	w.Header().Set("Location", "/orders/"+strconv.FormatInt(n, 10))
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, "order "+strconv.FormatInt(n, 10))
}

// post sends a POST with body and, when key is set, an Idempotency-Key; it
// returns the status (0 after an error), the body and the replay header.
func post(t *testing.T, c *http.Client, url, body, key string) (int, string, string) {
	t.Helper()
	hdr := []string{}
	if key != "" {
		hdr = append(hdr, "Idempotency-Key", key)
	}
	resp, err := do(t, c, context.Background(), http.MethodPost, url+"/orders", body, hdr...)
	if err != nil {
		return 0, "", ""
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b), resp.Header.Get("Idempotent-Replayed")
}

func keyOutcomes(recs []Record) []KeyOutcome {
	out := make([]KeyOutcome, len(recs))
	for i, r := range recs {
		out[i] = r.KeyOutcome
	}
	return out
}

// TestServerIdempotencyReplaysAfterReset: the work of a keyed POST is done
// and stored before the connection is reset; the retry with the same key
// gets the stored answer, marked as a replay, and is not processed again.
func TestServerIdempotencyReplaysAfterReset(t *testing.T) {
	o := &orders{}
	s := NewServer(Scenario{Faults: []Fault{ConnReset().Times(1)}}, WithIdempotency(), WithHandler(o))
	url, c := startServer(t, s, false)
	if st, _, _ := post(t, c, url, `{"order":1}`, `"k1"`); st != 0 {
		t.Fatalf("first delivery: status %d; want the reset", st)
	}
	st, body, replayed := post(t, c, url, `{"order":1}`, `"k1"`)
	if st != 201 || body != "order 1" || replayed != "true" {
		t.Fatalf("retry: %d %q replayed=%q; want the stored 201 \"order 1\", replayed", st, body, replayed)
	}
	if st, body, replayed := post(t, c, url, `{"order":1}`, `"k1"`); st != 201 || body != "order 1" || replayed != "true" {
		t.Fatalf("second retry: %d %q replayed=%q; want the stored answer again", st, body, replayed)
	}
	if n := o.created.Load(); n != 1 {
		t.Fatalf("the handler created %d orders; want 1", n)
	}
	recs := s.Records()
	if got, want := keyOutcomes(recs), []KeyOutcome{KeyStored, KeyReplayed, KeyReplayed}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("key outcomes %v; want %v", got, want)
	}
	if recs[0].Fault != KindReset || recs[0].Status != 0 || !recs[0].Processed() || recs[1].Processed() {
		t.Fatalf("records %+v", recs)
	}
	rep := Analyze(recs, 1)
	if rep.DuplicateProcessing != 0 || rep.Replayed != 2 || rep.DuplicateDeliveries != 0 || rep.Answers["201"] != 2 {
		t.Fatalf("report %+v; want no duplicate processing and 2 replays", rep)
	}
}

// TestServerIdempotencyRefusals: a key reused for another request gets 422,
// a key still being processed 409; neither is processed.
func TestServerIdempotencyRefusals(t *testing.T) {
	o := &orders{gate: make(chan struct{}), entered: make(chan struct{})}
	s := NewServer(Scenario{}, WithIdempotency(), WithHandler(o))
	url, c := startServer(t, s, false)
	first := make(chan int)
	go func() {
		st, _, _ := post(t, c, url, "a", "k")
		first <- st
	}()
	select {
	case <-o.entered: // the first request is in the handler
	case st := <-first:
		t.Fatalf("first request ended early: %d", st)
	}
	if st, _, _ := post(t, c, url, "a", "k"); st != http.StatusConflict {
		t.Fatalf("same key while processing: %d; want 409", st)
	}
	close(o.gate)
	if st := <-first; st != 201 {
		t.Fatalf("first request: %d; want 201", st)
	}
	if st, _, _ := post(t, c, url, "b", "k"); st != http.StatusUnprocessableEntity {
		t.Fatalf("same key, other body: %d; want 422", st)
	}
	if n := o.created.Load(); n != 1 {
		t.Fatalf("%d orders; want 1", n)
	}
	recs := s.Records()
	var got []KeyOutcome
	for _, r := range recs {
		got = append(got, r.KeyOutcome)
	}
	// Arrival order: the first request, the 409, the 422.
	if len(got) != 3 || got[0] != KeyStored || got[1] != KeyInFlight || got[2] != KeyMismatch {
		t.Fatalf("key outcomes %v; want stored, in-flight, mismatch", got)
	}
	if d := DuplicateProcessing(recs); len(d) != 0 {
		t.Fatalf("duplicate processing %+v; want none", d)
	}
}

// TestServerIdempotencySkipped: an injected 503 answers before the work, so
// the key stays unused and the retry is processed, once.
func TestServerIdempotencySkipped(t *testing.T) {
	o := &orders{}
	s := NewServer(Scenario{Faults: []Fault{Status(503).Times(1)}}, WithIdempotency(), WithHandler(o))
	url, c := startServer(t, s, true)
	if st, _, _ := post(t, c, url, "a", "k"); st != 503 {
		t.Fatalf("first: %d; want the injected 503", st)
	}
	if st, body, replayed := post(t, c, url, "a", "k"); st != 201 || body != "order 1" || replayed != "" {
		t.Fatalf("retry: %d %q replayed=%q; want processed: 201 \"order 1\"", st, body, replayed)
	}
	recs := s.Records()
	if recs[0].KeyOutcome != KeySkipped || recs[1].KeyOutcome != KeyStored || len(DuplicateProcessing(recs)) != 0 {
		t.Fatalf("records %+v", recs)
	}
}

// TestServerIdempotencyBounded: the Server remembers at most n keys, the
// oldest forgotten first; a forgotten key is processed again.
func TestServerIdempotencyBounded(t *testing.T) {
	o := &orders{}
	s := NewServer(Scenario{}, WithMaxIdempotencyKeys(2), WithHandler(o))
	url, c := startServer(t, s, true)
	for _, k := range []string{"a", "b", "c", "c", "b", "a"} {
		post(t, c, url, "x", k)
	}
	if n := s.idem.len(); n != 2 {
		t.Fatalf("%d keys held; want 2", n)
	}
	// a, b, c processed; c and b replayed; a was forgotten: processed again.
	if n := o.created.Load(); n != 4 {
		t.Fatalf("%d orders; want 4", n)
	}
	if got := keyOutcomes(s.Records()); got[3] != KeyReplayed || got[4] != KeyReplayed || got[5] != KeyStored {
		t.Fatalf("key outcomes %v", got)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("WithMaxIdempotencyKeys(0) did not panic")
			}
		}()
		WithMaxIdempotencyKeys(0)
	}()
}

// TestServerIdempotencyPanickingHandler: work that did not finish stores
// nothing; the next request with the key is processed.
func TestServerIdempotencyPanickingHandler(t *testing.T) {
	var calls atomic.Int64
	s := NewServer(Scenario{}, WithIdempotency(), WithHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			panic(http.ErrAbortHandler)
		}
		w.WriteHeader(201)
	})))
	url, c := startServer(t, s, false)
	post(t, c, url, "x", "k")
	if st, _, _ := post(t, c, url, "x", "k"); st != 201 || calls.Load() != 2 {
		t.Fatalf("after a panicking first try: %d, %d handler calls; want 201 and 2", st, calls.Load())
	}
}

// TestServerWithoutIdempotencyProcessesKeys: a Server that does not honour
// keys processes every delivery; DuplicateProcessing counts the extra ones
// with or without a key, DuplicateDeliveries only those without.
func TestServerWithoutIdempotencyProcessesKeys(t *testing.T) {
	o := &orders{}
	s := NewServer(Scenario{}, WithHandler(o))
	url, c := startServer(t, s, true)
	post(t, c, url, "x", "k")
	post(t, c, url, "x", "k")
	post(t, c, url, "y", "")
	post(t, c, url, "y", "")
	recs := s.Records()
	if o.created.Load() != 4 || recs[1].KeyOutcome != KeyNone {
		t.Fatalf("%d orders, outcome %v; want 4 and none", o.created.Load(), recs[1].KeyOutcome)
	}
	if d := DuplicateProcessing(recs); len(d) != 2 || d[0].Seq != 1 || d[1].Seq != 3 {
		t.Fatalf("duplicate processing %+v; want requests 1 and 3", d)
	}
	if d := DuplicateDeliveries(recs); len(d) != 1 || d[0].Seq != 3 {
		t.Fatalf("duplicate deliveries %+v; want request 3", d)
	}
}

func TestKeyOutcomeJSON(t *testing.T) {
	for k := KeyNone; k <= KeySkipped; k++ {
		b, err := json.Marshal(Record{KeyOutcome: k})
		if err != nil {
			t.Fatal(err)
		}
		var r Record
		if err := json.Unmarshal(b, &r); err != nil || r.KeyOutcome != k {
			t.Fatalf("%v: round trip gave %v, %v (%s)", k, r.KeyOutcome, err, b)
		}
	}
	var k KeyOutcome
	if err := k.UnmarshalText([]byte("nope")); err == nil {
		t.Fatal("unknown key outcome accepted")
	}
	if s := KeyOutcome(42).String(); s != "KeyOutcome(42)" {
		t.Fatalf("String() = %q", s)
	}
}
