package chaos

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestAmplification(t *testing.T) {
	recs := make([]Record, 13)
	if got := Amplification(recs, 10); got != 1.3 {
		t.Fatalf("got %v; want 1.3", got)
	}
	if got := Amplification(recs, 0); got != 0 {
		t.Fatalf("got %v with no calls; want 0", got)
	}
}

func TestPolitenessViolations(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	push := func(seq int, id string, ms int) Record {
		return Record{Seq: seq, RequestID: id, Time: at(ms), Answered: at(ms + 10), Status: 429,
			RetryAfter: time.Second, NotBefore: at(ms + 1010)}
	}
	req := func(seq int, id string, ms int) Record {
		return Record{Seq: seq, RequestID: id, Time: at(ms), Answered: at(ms), Status: 200}
	}
	recs := []Record{
		push(0, "a", 0),
		req(1, "b", 5),    // arrived before the pushback was answered: never a violation
		req(2, "b", 500),  // another call inside a's window: a violation only for the server
		req(3, "a", 1009), // a itself came back 1ms early
		req(4, "a", 1010), // exactly at NotBefore: polite
		req(5, "", 600),   // no ID: only the server view sees it
	}
	seqs := func(v []Violation) []int {
		var out []int
		for _, x := range v {
			out = append(out, x.Request.Seq)
		}
		return out
	}
	if got, want := seqs(PolitenessViolations(recs, ByRequestID)), []int{3}; !reflect.DeepEqual(got, want) {
		t.Errorf("by request ID: %v; want %v", got, want)
	}
	if got, want := seqs(PolitenessViolations(recs, ByServer)), []int{2, 3, 5}; !reflect.DeepEqual(got, want) {
		t.Errorf("by server: %v; want %v", got, want)
	}
	if v := PolitenessViolations(recs[1:], ByServer); len(v) != 0 {
		t.Errorf("no pushback, %d violations", len(v))
	}
}

func TestDuplicateDeliveries(t *testing.T) {
	recs := []Record{
		{Seq: 0, Method: "POST", Path: "/o", RequestID: "c1"},
		{Seq: 1, Method: "POST", Path: "/o", RequestID: "c1"},                       // duplicate by ID
		{Seq: 2, Method: "POST", Path: "/o", RequestID: "c2", IdempotencyKey: "k"},  // keyed: safe
		{Seq: 3, Method: "POST", Path: "/o", RequestID: "c2", IdempotencyKey: "k"},  // keyed: safe
		{Seq: 4, Method: "GET", Path: "/o", RequestID: "c3"},                        // idempotent
		{Seq: 5, Method: "GET", Path: "/o", RequestID: "c3"},                        // idempotent
		{Seq: 6, Method: "PATCH", Path: "/o", BodyHash: "h1"},                       // no ID: by body
		{Seq: 7, Method: "PATCH", Path: "/o", BodyHash: "h1"},                       // duplicate by body
		{Seq: 8, Method: "PATCH", Path: "/o", BodyHash: "h2"},                       // another body
		{Seq: 9, Method: "POST", Path: "/o"},                                        // nothing to group on
		{Seq: 10, Method: "POST", Path: "/o"},                                       // nothing to group on
		{Seq: 11, Method: "POST", Path: "/o", RequestID: "c1", Status: 200},         // a third delivery
		{Seq: 12, Method: "DELETE", Path: "/o", RequestID: "c4", BodyHash: "h1"},    // idempotent
		{Seq: 13, Method: "DELETE", Path: "/o", RequestID: "c4", BodyHash: "h1"},    // idempotent
		{Seq: 14, Method: "POST", Path: "/other", RequestID: "", BodyHash: "h1"},    // other path
		{Seq: 15, Method: "POST", Path: "/other", RequestID: "c5", BodyHash: "h1"},  // has an ID
		{Seq: 16, Method: "PUT", Path: "/o", RequestID: "c6"},                       // idempotent
		{Seq: 17, Method: "PUT", Path: "/o", RequestID: "c6"},                       // idempotent
		{Seq: 18, Method: "CONNECT", Path: "/o", RequestID: "c7"},                   // not idempotent
		{Seq: 19, Method: "CONNECT", Path: "/o", RequestID: "c7", Attempt: 1},       // duplicate
		{Seq: 20, Method: "OPTIONS", Path: "/o", RequestID: "c8"},                   // idempotent
		{Seq: 21, Method: "OPTIONS", Path: "/o", RequestID: "c8"},                   // idempotent
		{Seq: 22, Method: "POST", Path: "/o", RequestID: "c9", IdempotencyKey: "k"}, // keyed
	}
	var got []int
	// Out of order input: the first delivery is the earliest Seq.
	rev := append([]Record(nil), recs...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	for _, r := range DuplicateDeliveries(rev) {
		got = append(got, r.Seq)
	}
	if want := []int{1, 7, 11, 19}; !reflect.DeepEqual(got, want) {
		t.Fatalf("duplicates %v; want %v", got, want)
	}
}

func TestAnalyzeAnswers(t *testing.T) {
	recs := []Record{
		{Status: 200}, {Status: 503}, {Fault: KindReset}, {Fault: KindHang}, {Canceled: true, Fault: KindStatus},
		{Status: 200, Fault: KindStall},
	}
	rep := Analyze(recs, 3)
	want := map[string]int{"200": 2, "503": 1, "reset": 1, "hang": 1, "canceled": 1}
	if !reflect.DeepEqual(rep.Answers, want) || rep.Amplification != 2 || rep.Calls != 3 || rep.Requests != 6 {
		t.Fatalf("report %+v; want answers %v", rep, want)
	}
}

func TestRecordJSON(t *testing.T) {
	in := Record{Seq: 3, Fault: KindReset, Attempt: 1}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"Fault":"reset"`) {
		t.Fatalf("%s: fault not written by name", b)
	}
	var out Record
	if err := json.Unmarshal(b, &out); err != nil || out.Fault != KindReset || out.Seq != 3 {
		t.Fatalf("round trip: %+v, %v", out, err)
	}
	if err := json.Unmarshal([]byte(`{"Fault":"nope"}`), &out); err == nil {
		t.Fatal("unknown kind accepted")
	}
	st, _ := json.Marshal(Stats{Requests: 2, Fired: map[Kind]int{KindHang: 1}})
	if string(st) != `{"Requests":2,"Fired":{"hang":1}}` {
		t.Fatalf("stats JSON %s", st)
	}
}
