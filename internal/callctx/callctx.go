// Package callctx carries per-call facts between the concern packages through
// the request context: the request ID, the attempt number and type, the route
// template, the retry budget, and a recorder that receives resilience events
// for the logical call.
//
// Concern packages import only the standard library, their own dependencies
// and internal/, never each other; this package is how they cooperate.
package callctx

import (
	"context"
	"time"
)

type key int

const (
	requestIDKey key = iota
	attemptKey
	routeKey
	recorderKey
	budgetKey
)

// WithRequestID returns a copy of ctx carrying the request ID id.
func WithRequestID(ctx context.Context, id string) context.Context {
	// One allocation instead of context.WithValue's two (the valueCtx and the
	// string boxed into an interface): Value hands out a pointer into the
	// context, which needs no boxing.
	return &idCtx{Context: ctx, id: id}
}

type idCtx struct {
	context.Context
	id string
}

func (c *idCtx) Value(k any) any {
	if k == any(requestIDKey) {
		return &c.id
	}
	return c.Context.Value(k)
}

func (c *idCtx) String() string { return "callctx.WithRequestID" }

// RequestID returns the request ID carried by ctx, if any.
func RequestID(ctx context.Context) (string, bool) {
	p, ok := ctx.Value(requestIDKey).(*string)
	if !ok {
		return "", false
	}
	return *p, *p != ""
}

// WithAttempt returns a copy of ctx carrying the attempt number n (0 for the
// first attempt of a call, 1 for the first resend, ...). An attempt numbered
// above 0 is a retry (AttemptRetry); attempt 0 keeps the type ctx carries.
func WithAttempt(ctx context.Context, n int) context.Context {
	typ := AttemptRetry
	if n <= 0 {
		typ = AttemptTypeOf(ctx)
	}
	return context.WithValue(ctx, attemptKey, packAttempt(n, typ))
}

// Attempt returns the attempt number carried by ctx, or 0 when there is none.
func Attempt(ctx context.Context) int {
	v, _ := ctx.Value(attemptKey).(attempt)
	return int(v >> attemptTypeBits)
}

// AttemptType says why an attempt was sent, as gRPC's A96 attempt_type does:
// the tracing layer puts it on every attempt span.
type AttemptType uint8

// Attempt types.
const (
	AttemptOriginal AttemptType = iota // the first attempt of a call
	AttemptRetry                       // sent after an earlier attempt failed
	AttemptHedge                       // sent while an earlier attempt was still in flight
)

// String returns the type's name as used in telemetry: "original", "retry"
// or "hedge".
func (t AttemptType) String() string {
	switch t {
	case AttemptRetry:
		return "retry"
	case AttemptHedge:
		return "hedge"
	}
	return "original"
}

// WithAttemptType returns a copy of ctx whose attempt is of type typ; the
// attempt number stays the one ctx carries.
func WithAttemptType(ctx context.Context, typ AttemptType) context.Context {
	return context.WithValue(ctx, attemptKey, packAttempt(Attempt(ctx), typ))
}

// AttemptTypeOf returns the attempt type carried by ctx: AttemptOriginal when
// there is none.
func AttemptTypeOf(ctx context.Context) AttemptType {
	v, _ := ctx.Value(attemptKey).(attempt)
	return AttemptType(v & (1<<attemptTypeBits - 1))
}

// attempt packs an attempt number and type into one context value, so that
// the innermost layer's word on both is found in one lookup, and so that
// boxing it costs no allocation for the attempt numbers a call reaches (the
// runtime boxes integers below 256 for free).
type attempt uint64

const attemptTypeBits = 2

func packAttempt(n int, typ AttemptType) attempt {
	return attempt(max(n, 0))<<attemptTypeBits | attempt(typ)
}

// Withdrawer is a retry budget: Withdraw takes one resend from it, reporting
// whether there was one. Implementations are safe for concurrent use.
type Withdrawer interface {
	Withdraw(now time.Time) bool
}

// WithRetryBudget returns a copy of ctx carrying b, the retry budget of the
// call's upstream, so that a layer below which sends extra attempts (hedges)
// spends the budget retries spend.
func WithRetryBudget(ctx context.Context, b Withdrawer) context.Context {
	return context.WithValue(ctx, budgetKey, b)
}

// RetryBudget returns the retry budget carried by ctx, if any.
func RetryBudget(ctx context.Context) (Withdrawer, bool) {
	b, ok := ctx.Value(budgetKey).(Withdrawer)
	return b, ok && b != nil
}

// SpendsRetryBudget reports whether next, the RoundTripper below a retry
// layer, asks for the retry budget in the context of its requests (by a
// method SpendsRetryBudget() bool that reports true, as the hedge layer's
// does). Only then does the retry layer pay for putting it there.
func SpendsRetryBudget(next any) bool {
	s, ok := next.(interface{ SpendsRetryBudget() bool })
	return ok && s.SpendsRetryBudget()
}

// WithRoute returns a copy of ctx carrying a low-cardinality route template
// such as "/v1/users/{id}".
func WithRoute(ctx context.Context, route string) context.Context {
	return context.WithValue(ctx, routeKey, route)
}

// Route returns the route template carried by ctx, if any.
func Route(ctx context.Context) (string, bool) {
	r, ok := ctx.Value(routeKey).(string)
	return r, ok && r != ""
}

// Kind says what happened in an Event.
type Kind uint8

// Event kinds emitted by the concern packages.
const (
	// KindRetry: a retry was scheduled. Attempt is the number of the attempt
	// about to be sent (1 for the first resend), Delay the wait before it,
	// Reason why the previous attempt failed ("status_503", "timeout", ...).
	KindRetry Kind = iota + 1
	// KindRetryRefused: a failed attempt was not retried. Reason says why:
	// "budget" (retry budget spent), "deadline" (the wait would pass the
	// deadline), "attempts", "not_idempotent", "body_not_rewindable",
	// "refused_below" (a layer below refused the next attempt; the previous
	// response is returned).
	KindRetryRefused
	// KindBudgetExhausted: the total time budget of the call ran out.
	KindBudgetExhausted
	// KindRateLimitWait: an attempt waited Delay for a token, a concurrency
	// slot or the end of server pushback. Reason names the limit.
	KindRateLimitWait
	// KindRateLimitRejected: an attempt was refused by a limit. Reason names
	// the limit ("rate", "concurrency", "queue", "pushback").
	KindRateLimitRejected
	// KindCircuitRejected: an attempt was refused because the breaker for Key
	// is open; Delay is the time until the next probe.
	KindCircuitRejected
	// KindRateLimitFallback: a shared rate limit could not reach its store
	// and decided locally (redisrate's degraded mode). Reason is
	// "shared_limiter_unreachable".
	KindRateLimitFallback
	// KindHedge: a hedge was sent because no attempt had answered. Attempt
	// is the hedge's number (1 for the first), Delay how long after the
	// first attempt it was sent.
	KindHedge
	// KindHedgeWon: a call that sent hedges got its answer. Attempt is the
	// number of the attempt that won (0 for the first attempt, n for hedge
	// n), Reason "original" or "hedge".
	KindHedgeWon
	// KindHedgeSuppressed: a hedge was due but not sent. Reason is "budget"
	// (the retry budget is spent) or "saturated" (the upstream has no room:
	// see Saturation).
	KindHedgeSuppressed
)

// String returns the kind's name as used in telemetry.
func (k Kind) String() string {
	switch k {
	case KindRetry:
		return "retry"
	case KindRetryRefused:
		return "retry_refused"
	case KindBudgetExhausted:
		return "budget_exhausted"
	case KindRateLimitWait:
		return "ratelimit_wait"
	case KindRateLimitRejected:
		return "ratelimit_rejected"
	case KindCircuitRejected:
		return "circuit_rejected"
	case KindRateLimitFallback:
		return "ratelimit_fallback"
	case KindHedge:
		return "hedge"
	case KindHedgeWon:
		return "hedge_won"
	case KindHedgeSuppressed:
		return "hedge_suppressed"
	}
	return "unknown"
}

// Event is something a concern package did to one logical call.
type Event struct {
	Kind    Kind
	Attempt int           // attempt number the event refers to
	Delay   time.Duration // wait involved, if any
	Reason  string        // low-cardinality reason
	Key     string        // upstream key, if the layer is keyed
}

// Recorder receives the events of one logical call. Implementations must be
// safe for concurrent use.
type Recorder interface {
	Record(ctx context.Context, ev Event)
}

// WithRecorder returns a copy of ctx whose events go to r. An inner recorder
// does not replace an outer one: both receive every event.
func WithRecorder(ctx context.Context, r Recorder) context.Context {
	if outer, ok := ctx.Value(recorderKey).(Recorder); ok && outer != nil {
		r = teeRecorder{outer, r}
	}
	return context.WithValue(ctx, recorderKey, r)
}

type teeRecorder struct{ a, b Recorder }

func (t teeRecorder) Record(ctx context.Context, ev Event) {
	t.a.Record(ctx, ev)
	t.b.Record(ctx, ev)
}

// Emit sends ev to the recorder carried by ctx; it does nothing when there is none.
func Emit(ctx context.Context, ev Event) {
	if r, ok := ctx.Value(recorderKey).(Recorder); ok && r != nil {
		r.Record(ctx, ev)
	}
}

// Now returns when the attempt whose context is ctx began, as the layer that
// began it read the clock, so that the layers an attempt passes through on
// its way out read the clock once between them instead of once each (issue
// 18: a reading costs 30 to 85 ns on a VM, and a call made seven). A
// context knows it only while it is the attempt's own and unchanged: the
// call's context (Call) as the deadline layer passes it on, and a hedge
// layer's first attempt. Any other context (a retry's resend, a hedge, a
// context a layer in between derived) reads the clock: time.Now().
//
// The reading is at most as old as the layers between took, so its users
// are the clocks that tolerate that: the retry budget's and the circuit
// breaker's windows, and the hedge layer's start of the first attempt. The
// rate limiter keeps a reading of its own: x/time/rate moves its clock back
// to an earlier time it is given, and then credits the same interval twice.
func Now(ctx context.Context) time.Time {
	if a, ok := ctx.(attemptClock); ok {
		if t, ok := a.AttemptStart(); ok {
			return t
		}
	}
	return time.Now()
}

// Since returns Now(ctx).Sub(t), reading only the monotonic clock
// (time.Since, half the cost of time.Now) when ctx has no reading to share.
func Since(ctx context.Context, t time.Time) time.Duration {
	if a, ok := ctx.(attemptClock); ok {
		if now, ok := a.AttemptStart(); ok {
			return now.Sub(t)
		}
	}
	return time.Since(t)
}

// attemptClock is a context that knows when its attempt began (Now).
type attemptClock interface {
	AttemptStart() (time.Time, bool)
}

// ErrAttemptTimeout is the cause a layer gives the context of one attempt when
// it bounds that attempt's duration:
//
//	actx, cancel := context.WithTimeoutCause(ctx, d, callctx.ErrAttemptTimeout)
//
// Layers below then tell an attempt that ran out of its own time (the
// upstream was too slow: the circuit breaker counts a failure) from a caller
// that gave up or whose total budget ran out (which says nothing about the
// upstream) with errors.Is(context.Cause(ctx), ErrAttemptTimeout).
//
// It is a timeout like the context's own: errors.Is(err,
// context.DeadlineExceeded) holds and its Timeout method reports true, so an
// attempt that timed out maps to 504, not 502, and net.Error checks see it.
var ErrAttemptTimeout error = attemptTimeoutError{}

type attemptTimeoutError struct{}

func (attemptTimeoutError) Error() string        { return "retry: attempt timeout" }
func (attemptTimeoutError) Timeout() bool        { return true }
func (attemptTimeoutError) Temporary() bool      { return true }
func (attemptTimeoutError) Is(target error) bool { return target == context.DeadlineExceeded }
