package callctx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

type sliceRecorder struct{ got *[]Event }

func (r sliceRecorder) Record(_ context.Context, ev Event) { *r.got = append(*r.got, ev) }

func TestValues(t *testing.T) {
	ctx := context.Background()
	if _, ok := RequestID(ctx); ok || Attempt(ctx) != 0 {
		t.Fatal("empty context reports values")
	}
	if _, ok := RequestID(WithRequestID(ctx, "")); ok {
		t.Fatal("an empty request ID counts as present")
	}
	ctx = WithRoute(WithAttempt(WithRequestID(ctx, "id-1"), 2), "/v1/users/{id}")
	id, _ := RequestID(ctx)
	r, _ := Route(ctx)
	if id != "id-1" || Attempt(ctx) != 2 || r != "/v1/users/{id}" {
		t.Fatalf("got %q %d %q", id, Attempt(ctx), r)
	}
}

func TestEmitReachesOuterAndInnerRecorders(t *testing.T) {
	Emit(context.Background(), Event{Kind: KindRetry}) // no recorder: no panic
	var outer, inner []Event
	ctx := WithRecorder(context.Background(), sliceRecorder{&outer})
	ctx = WithRecorder(ctx, sliceRecorder{&inner})
	Emit(ctx, Event{Kind: KindRetry, Attempt: 1})
	if len(outer) != 1 || len(inner) != 1 || outer[0].Attempt != 1 {
		t.Fatalf("outer %v inner %v; want one event each", outer, inner)
	}
	if KindRetry.String() != "retry" || Kind(200).String() != "unknown" {
		t.Fatal("Kind names")
	}
}

func TestErrAttemptTimeoutIsATimeout(t *testing.T) {
	ctx, cancel := context.WithTimeoutCause(context.Background(), 0, ErrAttemptTimeout)
	defer cancel()
	<-ctx.Done()
	cause := context.Cause(ctx)
	if !errors.Is(cause, ErrAttemptTimeout) || !errors.Is(cause, context.DeadlineExceeded) {
		t.Fatalf("cause %v; want ErrAttemptTimeout matching context.DeadlineExceeded", cause)
	}
	var ne net.Error
	if !errors.As(cause, &ne) || !ne.Timeout() {
		t.Fatalf("cause %v is not a net.Error timeout", cause)
	}
	plain, cancel2 := context.WithTimeout(context.Background(), 0)
	defer cancel2()
	<-plain.Done()
	if errors.Is(context.Cause(plain), ErrAttemptTimeout) {
		t.Fatal("a plain deadline must not read as an attempt timeout")
	}
}

func TestAttemptType(t *testing.T) {
	ctx := context.Background()
	if got := AttemptTypeOf(ctx); got != AttemptOriginal {
		t.Fatalf("empty context: %v; want original", got)
	}
	retry := WithAttempt(ctx, 2)
	if n, typ := Attempt(retry), AttemptTypeOf(retry); n != 2 || typ != AttemptRetry {
		t.Fatalf("WithAttempt(2): %d %v; want 2 retry", n, typ)
	}
	hedge := WithAttemptType(retry, AttemptHedge)
	if n, typ := Attempt(hedge), AttemptTypeOf(hedge); n != 2 || typ != AttemptHedge {
		t.Fatalf("a hedge of attempt 2: %d %v; want 2 hedge", n, typ)
	}
	// An inner retry layer's first attempt keeps the type of the attempt
	// it belongs to.
	inner := WithAttempt(hedge, 0)
	if n, typ := Attempt(inner), AttemptTypeOf(inner); n != 0 || typ != AttemptHedge {
		t.Fatalf("attempt 0 inside a hedge: %d %v; want 0 hedge", n, typ)
	}
	for typ, want := range map[AttemptType]string{AttemptOriginal: "original", AttemptRetry: "retry", AttemptHedge: "hedge"} {
		if typ.String() != want {
			t.Errorf("%d.String() = %q; want %q", typ, typ.String(), want)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = WithAttempt(ctx, 3) }); allocs > 1 {
		t.Errorf("WithAttempt allocates %v times; want 1 (the context)", allocs)
	}
}

type budgetFunc func(time.Time) bool

func (f budgetFunc) Withdraw(now time.Time) bool { return f(now) }

func TestRetryBudget(t *testing.T) {
	if _, ok := RetryBudget(context.Background()); ok {
		t.Fatal("empty context carries a budget")
	}
	calls := 0
	ctx := WithRetryBudget(context.Background(), budgetFunc(func(time.Time) bool { calls++; return true }))
	b, ok := RetryBudget(ctx)
	if !ok || !b.Withdraw(time.Now()) || calls != 1 {
		t.Fatalf("RetryBudget: %v %v, %d calls; want the budget given", b, ok, calls)
	}
	if SpendsRetryBudget(struct{}{}) || !SpendsRetryBudget(spender(true)) || SpendsRetryBudget(spender(false)) {
		t.Fatal("SpendsRetryBudget")
	}
}

type spender bool

func (s spender) SpendsRetryBudget() bool { return bool(s) }

// TestCallUUID: a Call's UUID ID is the UUID's canonical text, the context
// carries it, the header value is it, and the three cost the Call's one
// allocation.
func TestCallUUID(t *testing.T) {
	u := [16]byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x46, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}
	c := NewCall(context.Background())
	id, vals := c.SetUUID(u)
	want := fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
	if id != want || len(vals) != 1 || vals[0] != want {
		t.Errorf("got id %q, header %q; want %q", id, vals, want)
	}
	if got, ok := RequestID(c); !ok || got != want {
		t.Errorf("RequestID = %q, %v; want %q", got, ok, want)
	}
	if n := testing.AllocsPerRun(100, func() { NewCall(context.Background()).SetUUID(u) }); n != 1 {
		t.Errorf("NewCall and SetUUID allocate %v times; want 1", n)
	}
}

// TestAdopt: a deadline layer adopts a Call only through the request copy it
// was bound to, and only once; a Call without an ID or a deadline answers
// with its parent's.
func TestAdopt(t *testing.T) {
	parent := WithRequestID(context.Background(), "outer")
	c := NewCall(parent)
	req, _ := http.NewRequestWithContext(c, "GET", "http://a.test/", nil)
	if _, ok := Adopt(req); ok {
		t.Fatal("adopted through a request the Call was not bound to")
	}
	c.Bind(req)
	if id, _ := RequestID(req.Context()); id != "outer" {
		t.Errorf("RequestID of a Call without one = %q; want the parent's", id)
	}
	if _, ok := req.Context().Deadline(); ok {
		t.Error("a Call without a deadline reports one")
	}
	if _, ok := CallDeadline(req.Context()); ok {
		t.Error("CallDeadline found a Call without a deadline")
	}
	got, ok := Adopt(req)
	if !ok || got != c {
		t.Fatalf("Adopt of the bound request = %v, %v; want the Call", got, ok)
	}
	if _, ok := Adopt(req); ok {
		t.Error("adopted twice")
	}
	d := time.Now().Add(time.Hour)
	got.SetDeadline(time.Now(), d, errors.New("budget"))
	if dl, ok := req.Context().Deadline(); !ok || !dl.Equal(d) {
		t.Errorf("Deadline after SetDeadline = %v, %v; want %v", dl, ok, d)
	}
	if dl, ok := CallDeadline(WithAttempt(req.Context(), 1)); !ok || !dl.Equal(d) {
		t.Errorf("CallDeadline below = %v, %v; want %v", dl, ok, d)
	}
	if req.Context().Err() != nil {
		t.Error("done before its deadline")
	}
	got.Release()
	if !errors.Is(req.Context().Err(), context.Canceled) {
		t.Errorf("Err after Release = %v; want context.Canceled", req.Context().Err())
	}
}

// TestCallRetryBudget: the first retry layer inside a call sets the call's
// retry budget, which a lookup from below finds; a second one is refused and
// its own context, made on top, is found first from below it.
func TestCallRetryBudget(t *testing.T) {
	outer := budgetFunc(func(time.Time) bool { return true })
	inner := budgetFunc(func(time.Time) bool { return false })
	c := NewCall(context.Background())
	if _, ok := RetryBudget(c); ok {
		t.Fatal("a new Call carries a retry budget")
	}
	if !c.SetRetryBudget(outer) {
		t.Fatal("SetRetryBudget on a new Call: false")
	}
	if c.SetRetryBudget(inner) {
		t.Fatal("a second SetRetryBudget: true; want the first to stay")
	}
	type otherKey struct{}
	if b, ok := RetryBudget(context.WithValue(c, otherKey{}, 1)); !ok || !b.Withdraw(time.Time{}) {
		t.Errorf("below the Call: %v %v; want the first budget", b, ok)
	}
	if b, ok := RetryBudget(WithRetryBudget(c, inner)); !ok || b.Withdraw(time.Time{}) {
		t.Errorf("below a second retry layer's context: %v %v; want that layer's budget", b, ok)
	}
}

// TestCallRetryBudgetConcurrent: two retry layers that share one Call at
// once (a middleware above them fans the request out) race to set its
// budget; one wins, the other is told false, and under -race neither the
// setting nor a lookup is a data race.
func TestCallRetryBudgetConcurrent(t *testing.T) {
	for range 50 {
		c := NewCall(context.Background())
		var won [2]bool
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() {
				won[i] = c.SetRetryBudget(budgetFunc(func(time.Time) bool { return true }))
				RetryBudget(c)
			})
		}
		wg.Wait()
		if won[0] == won[1] {
			t.Fatalf("SetRetryBudget from two goroutines: %v; want exactly one true", won)
		}
		if _, ok := RetryBudget(c); !ok {
			t.Fatal("no budget after one SetRetryBudget won")
		}
	}
}

type nowTestKey struct{}

// Now gives the deadline layer's reading while the Call is the attempt's
// context, and reads the clock for any other context.
func TestNowSharesTheCallsReadingOnly(t *testing.T) {
	stamp := time.Now().Add(-time.Hour) // no clock reads this now
	c := NewCall(context.Background())
	before := time.Now()
	if got := Now(c); got.Before(before) {
		t.Fatalf("Now of a Call without a deadline = %v; want the clock (after %v)", got, before)
	}
	c.SetDeadline(stamp, time.Now().Add(time.Minute), errors.New("budget"))
	if got := Now(c); !got.Equal(stamp) {
		t.Fatalf("Now(call) = %v; want the deadline layer's reading %v", got, stamp)
	}
	if got := Since(c, stamp.Add(-time.Second)); got != time.Second {
		t.Fatalf("Since(call, reading-1s) = %v; want 1s", got)
	}
	if got := Since(context.Background(), stamp); got < time.Hour {
		t.Fatalf("Since(background, an hour ago) = %v; want the clock's hour or more", got)
	}
	for name, ctx := range map[string]context.Context{
		"resend":     WithAttempt(c, 1),
		"value":      context.WithValue(c, nowTestKey{}, 1),
		"background": context.Background(),
	} {
		if got := Now(ctx); got.Before(before) {
			t.Errorf("%s: Now = %v; want the clock (after %v), not the call's reading", name, got, before)
		}
	}
}

// keyRecorder records the keys it is asked for, answering from ctx.
type keyRecorder struct {
	context.Context
	keys []any
}

func (k *keyRecorder) Value(key any) any {
	k.keys = append(k.keys, key)
	return k.Context.Value(key)
}

// TestIsContextKey: the key context.Cause looks up is the context
// package's own, and no other key is.
func TestIsContextKey(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Cause looks the key up only once the context is done
	rec := &keyRecorder{Context: ctx}
	context.Cause(rec)
	if len(rec.keys) != 1 || !IsContextKey(rec.keys[0]) {
		t.Fatalf("context.Cause asked for %v; want one key that IsContextKey recognizes", rec.keys)
	}
	for _, k := range []any{nil, requestIDKey, callKey{}, "cancelCtxKey", 0} {
		if IsContextKey(k) {
			t.Errorf("IsContextKey(%#v) = true; want false", k)
		}
	}
}

// TestCallSibling: a call's sibling has the call's deadline and cause and
// the parent's values, and there is none when the call has no deadline, was
// released, or made its own cancelable context already.
func TestCallSibling(t *testing.T) {
	type key struct{}
	parent := context.WithValue(context.Background(), key{}, "v")
	cause := errors.New("budget spent")
	newCall := func() *Call {
		c := NewCall(parent)
		now := time.Now()
		c.SetDeadline(now, now.Add(-time.Second), cause) // passed already
		return c
	}
	sib, cancel, ok := newCall().Sibling()
	if !ok {
		t.Fatal("no sibling for a call with a deadline")
	}
	defer cancel()
	if sib.Value(key{}) != "v" || !errors.Is(sib.Err(), context.DeadlineExceeded) || context.Cause(sib) != cause {
		t.Errorf("sibling: value %v, Err %v, Cause %v; want the parent's value, the call's deadline and cause", sib.Value(key{}), sib.Err(), context.Cause(sib))
	}
	released := newCall()
	released.Release()
	made := newCall()
	<-made.Done()
	for name, c := range map[string]*Call{"without a deadline": NewCall(parent), "released": released, "made": made} {
		if _, _, ok := c.Sibling(); ok {
			t.Errorf("%s: a sibling; want none", name)
		}
	}
}
