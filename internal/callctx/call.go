package callctx

import (
	"context"
	"encoding/hex"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Call is the context of one logical call, shared by the layers that must
// copy the request to give the call a context of their own: the request-ID
// layer (the ID) and the budget layer (the call's deadline). Each layer
// still works alone: the first to need a context makes a Call and the
// request copy carrying it, and binds the copy to it (Bind) when the layer
// below adopts Calls (AdoptsCall); that layer, finding the request it was
// given bound to an untouched Call (Adopt), fills its part of that Call in
// place instead of making a context and a request copy of its own. A call
// through both layers then pays for one context and one request copy
// instead of two of each (issue 18).
//
// Filling in place changes nothing any layer can see: the Call was made for
// that one request copy, which only the layers between the two hold, and
// none of them has read the deadline yet (a layer that did and changed the
// context made a request copy of its own, which is not the bound one).
//
// The deadline's cancelable context (context.WithDeadlineCause: a context,
// a timer, its function and a cancel function) is made only when something
// needs it: a layer below that waits on Done or makes a child context
// (net/http's Transport does both), an Err asked for once the deadline has
// passed, or the release. Once made, everything is the standard context's,
// so context.Cause and child contexts see a standard one; before, nothing
// can have canceled it but the parent, whose context answers. So
// context.Cause of a Call never made reports the parent's cause even after
// the deadline passed, until Err is asked: every layer asks Err first
// (Cause is meaningful only once Err is non-nil).
type Call struct {
	parent context.Context
	req    *http.Request // the request copy carrying this Call (Bind)

	// The request ID, set before the Call is handed on.
	id   string
	vals [1]string     // the ID's header value
	text [UUIDLen]byte // a UUID ID's text (SetUUID)

	// The deadline, set once (SetDeadline) before the call goes on.
	adopted     atomic.Bool // claimed by a deadline layer (Adopt or SetDeadline)
	hasDeadline atomic.Bool // deadline and cause are set
	deadline    time.Time   // earlier than the parent's, if it has one
	cause       error
	// How long before the deadline the clock was read for it (AttemptStart):
	// 8 bytes instead of a time.Time's 24, which kept the Call in a smaller
	// size class.
	startBefore time.Duration

	// The retry budget of the call's upstream, set once by the first retry
	// layer inside the call (SetRetryBudget): retryBudgetTaken is claimed
	// first, retryBudget written, then retryBudgetSet stored, so a reader
	// that sees retryBudgetSet sees the budget. Two retry layers can share
	// one Call at once (a middleware above them that fans a request out).
	retryBudgetTaken atomic.Bool
	retryBudgetSet   atomic.Bool
	retryBudget      Withdrawer

	made     atomic.Bool // ctx and cancel are set
	released atomic.Bool // written under mu
	mu       sync.Mutex
	ctx      context.Context
	cancel   context.CancelFunc
}

var _ context.Context = (*Call)(nil)

// UUIDLen is the length of a UUID's text form (RFC 9562 §4).
const UUIDLen = 36

// AdoptsCall reports whether next, the RoundTripper below a layer that makes
// a Call, fills a bound Call in place (by a method AdoptsCall() bool that
// reports true, as the budget layer's Transport does). Only then does the
// layer Bind its Call: the Call's deadline ends with the call's response, so
// no layer that might send the request, or one derived from its context,
// again (a retry layer) may sit between the two. Checked once, when the
// layer is built.
func AdoptsCall(next any) bool {
	a, ok := next.(interface{ AdoptsCall() bool })
	return ok && a.AdoptsCall()
}

// callKey finds the nearest Call with a deadline in a context chain.
type callKey struct{}

// NewCall returns a Call on parent, with neither an ID nor a deadline.
func NewCall(parent context.Context) *Call { return &Call{parent: parent} }

// Bind records req as the request copy that carries c, the one request a
// later layer may Adopt c through. Call it once, before sending req on.
func (c *Call) Bind(req *http.Request) { c.req = req }

// Adopt returns the Call that req carries, for a deadline layer to fill in
// place, when req is the request copy it was bound to and no deadline layer
// has claimed it. Otherwise the layer makes a Call of its own.
func Adopt(req *http.Request) (*Call, bool) {
	c, ok := req.Context().(*Call)
	if !ok || c.req != req || !c.adopted.CompareAndSwap(false, true) {
		return nil, false
	}
	return c, true
}

// SetID sets the call's request ID, and returns its header value
// ([]string{id}, read-only) from the same allocation.
func (c *Call) SetID(id string) []string {
	c.id = id
	c.vals[0] = id
	return c.vals[:]
}

// SetUUID sets the call's request ID to the text form of the UUID u, written
// into the Call's own storage so that the ID's text costs no allocation of
// its own, and returns the ID and its header value.
func (c *Call) SetUUID(u [16]byte) (string, []string) {
	formatUUID(&c.text, u)
	// The bytes are never written again, and the string keeps the Call
	// (which holds them) alive: the string's promise of immutable memory
	// holds.
	id := unsafe.String(&c.text[0], UUIDLen)
	return id, c.SetID(id)
}

// SetDeadline gives the call the deadline d, which must come before the
// parent's, with cause as the context's cause when it passes; now is the
// clock reading d was computed from, which the layers below the deadline
// layer take as their attempt's start (Now) while the Call is the context
// of the attempt they see. Call it once, after Adopt or on a new Call,
// before the call goes on.
func (c *Call) SetDeadline(now, d time.Time, cause error) {
	c.adopted.Store(true)
	c.deadline, c.cause = d, cause
	c.startBefore = max(d.Sub(now), 1) // 0 would read as no reading
	c.hasDeadline.Store(true)
}

// AttemptStart returns the clock reading given to SetDeadline, if any.
func (c *Call) AttemptStart() (time.Time, bool) {
	if !c.hasDeadline.Load() || c.startBefore == 0 {
		return time.Time{}, false
	}
	return c.deadline.Add(-c.startBefore), true
}

// CallDeadline returns the deadline set with SetDeadline on the nearest Call
// in ctx's chain, below any deadline a context under it added (a
// per-attempt timeout): a redirect hop finds its call's deadline by it.
func CallDeadline(ctx context.Context) (time.Time, bool) {
	if c, ok := ctx.Value(callKey{}).(*Call); ok {
		return c.deadline, true
	}
	return time.Time{}, false
}

// get returns the cancelable context, making it the first time; a context
// made after the release is canceled at once.
func (c *Call) get() context.Context {
	if c.made.Load() {
		return c.ctx
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.made.Load() {
		c.ctx, c.cancel = context.WithDeadlineCause(c.parent, c.deadline, c.cause)
		if c.released.Load() {
			c.cancel()
		}
		c.made.Store(true)
	}
	return c.ctx
}

// Deadline returns the call's deadline, or the parent's without one.
func (c *Call) Deadline() (time.Time, bool) {
	if c.hasDeadline.Load() {
		return c.deadline, true
	}
	return c.parent.Deadline()
}

// Done returns the channel closed when the deadline passes, the parent ends
// or the call is released; the parent's without a deadline.
func (c *Call) Done() <-chan struct{} {
	if c.hasDeadline.Load() {
		return c.get().Done()
	}
	return c.parent.Done()
}

// Err returns the context's error. Before the cancelable context is made, it
// is the parent's, unless the deadline has passed or the call was released:
// then the context is made, done at once with the deadline's cause.
func (c *Call) Err() error {
	if c.made.Load() {
		return c.ctx.Err()
	}
	if err := c.parent.Err(); err != nil || !c.hasDeadline.Load() {
		return err
	}
	// time.Until reads only the monotonic clock (the deadline carries a
	// reading), half the cost of time.Now on a path that every layer
	// checking for a done context takes.
	if c.released.Load() || time.Until(c.deadline) <= 0 {
		return c.get().Err()
	}
	return nil
}

// Value returns the call's request ID and deadline mark, and otherwise the
// parent's values (the cancelable context's once made, which context.Cause
// looks up).
func (c *Call) Value(k any) any {
	switch k {
	case any(requestIDKey):
		if c.id != "" {
			return &c.id
		}
	case callKey{}:
		if c.hasDeadline.Load() {
			return c
		}
	case any(budgetKey):
		if c.retryBudgetSet.Load() {
			return c.retryBudget
		}
	}
	if c.made.Load() {
		return c.ctx.Value(k)
	}
	return c.parent.Value(k)
}

func (c *Call) String() string { return "callctx.Call" }

// SetRetryBudget makes c carry b, the retry budget of the call's upstream,
// for a layer below that spends it (hedges; see RetryBudget), and reports
// whether it did. A retry layer whose request's context is the call's own
// calls it instead of WithRetryBudget, which would cost a context and a
// request copy per call. Only the first retry layer inside a call sets it:
// a second one is told false and carries its budget in a context of its
// own, which a lookup from below finds first. It is safe for concurrent
// use: of two retry layers that share one Call at once, one wins.
func (c *Call) SetRetryBudget(b Withdrawer) bool {
	if b == nil || !c.retryBudgetTaken.CompareAndSwap(false, true) {
		return false
	}
	c.retryBudget = b
	c.retryBudgetSet.Store(true)
	return true
}

// Sibling returns a cancelable context with the call's deadline and cause,
// made on the call's parent instead of on the call's own cancelable context,
// which it does not make; ok is false when the call has no deadline, was
// released or made that context already. It is for the one layer below that
// makes a cancelable context of its own for the attempt the call's context
// is handed to unchanged (the hedge layer's first attempt, which a winning
// hedge cancels): deriving it from the call would make two cancelable
// contexts, two timers' worth of registration and a children map in each,
// where net/http's Transport below waits on one (issue 18: four allocations
// per call over the network). The sibling carries the parent's values only:
// its user answers the call's own values from the call (Value), and the
// context package's own lookups (context.Cause, parent cancellation) from
// the sibling. The call's Release does not cancel it; its user cancels it
// when the attempt is done, which is never later than the call's release.
func (c *Call) Sibling() (ctx context.Context, cancel context.CancelFunc, ok bool) {
	if !c.hasDeadline.Load() || c.made.Load() || c.released.Load() {
		return nil, nil, false
	}
	ctx, cancel = context.WithDeadlineCause(c.parent, c.deadline, c.cause)
	return ctx, cancel, true
}

// IsContextKey reports whether key is the context package's own key, which a
// standard cancelable context answers with itself: context.Cause and the
// registration of a child context look it up to find the cancelable context
// in a chain. A context that wraps a sibling (Sibling) answers that key from
// the sibling and every other key from the call. The key is unexported, so
// it is recognized by how a probe answers it (TestIsContextKey fails if a
// Go release changes that).
func IsContextKey(key any) bool { return key != nil && cancelProbe.Value(key) == any(cancelProbe) }

// cancelProbe is a cancelable context that is never canceled; it answers
// only the context package's key with itself.
var cancelProbe, _ = context.WithCancel(context.Background())

// Release ends the call's deadline when the caller is done with the
// response, or at once when the attempt failed: its context is canceled if
// it was made, so its timer stops and nothing stays registered with the
// parent, and canceled at once if something makes it later.
func (c *Call) Release() {
	c.mu.Lock()
	c.released.Store(true)
	made := c.made.Load()
	c.mu.Unlock()
	if made {
		c.cancel()
	}
}

// formatUUID writes u's canonical text form, xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx
// in lower-case hex, into dst.
func formatUUID(dst *[UUIDLen]byte, u [16]byte) {
	hex.Encode(dst[0:8], u[0:4])
	dst[8] = '-'
	hex.Encode(dst[9:13], u[4:6])
	dst[13] = '-'
	hex.Encode(dst[14:18], u[6:8])
	dst[18] = '-'
	hex.Encode(dst[19:23], u[8:10])
	dst[23] = '-'
	hex.Encode(dst[24:], u[10:])
}
