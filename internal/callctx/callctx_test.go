package callctx

import (
	"context"
	"errors"
	"net"
	"testing"
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
