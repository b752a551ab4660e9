package retry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outboundhttp/outbound/internal/body"
	"github.com/outboundhttp/outbound/internal/clock"
)

// DefaultResponseBuffer is the default of WithResponseBuffer: a response body
// of at most 64 KiB is read inside the attempt. It holds a typical JSON answer
// whole (and is the bound to which a retried response is kept, see
// Transport), arrives in a TCP window or two so holding it back adds little
// latency, and caps the buffers of 100 attempts in flight per upstream at
// 6.4 MiB. docs/retry.md has the drill it was chosen from.
const DefaultResponseBuffer int64 = 64 << 10

// responseBuffer is the setting of WithResponseBuffer: the limit, and the
// scratch buffers (of limit+1 bytes) that bodies of undeclared length are
// read into before they are copied into a body of their own length. Pooled,
// an undeclared body costs one allocation of its own size instead of a
// buffer grown by doubling (64 KiB: 204 KB and 14 allocations per call
// without the pool, 66 KB and 6 with it; see BenchmarkResponseBuffer).
type responseBuffer struct {
	limit   int64
	scratch *sync.Pool // of *[]byte; nil when limit is 0
	watches *sync.Pool // of *stallWatch whose timer never fired (stallWatch.stop)
}

func newResponseBuffer(n int64) responseBuffer {
	if n == 0 {
		return responseBuffer{}
	}
	return responseBuffer{limit: n, watches: new(sync.Pool), scratch: &sync.Pool{New: func() any {
		b := make([]byte, 0, n+1)
		return &b
	}}}
}

// streamingKey marks a request context whose response must not be buffered.
type streamingKey struct{}

// Streaming returns a copy of ctx that asks the retry layer never to read
// the response body of a request sent with it inside the attempt (see
// WithResponseBuffer): the caller gets the body as it arrives from the wire,
// whatever its length and type. Use it for long polls and streams whose
// Content-Type does not say so:
//
//	req, _ := http.NewRequestWithContext(retry.Streaming(ctx), "GET", url, nil)
//
// A stream's failures are then the caller's to handle, as without retries.
func Streaming(ctx context.Context) context.Context {
	return context.WithValue(ctx, streamingKey{}, true)
}

func isStreaming(ctx context.Context) bool {
	v, _ := ctx.Value(streamingKey{}).(bool)
	return v
}

// buffers reports whether attempt n's response body is read inside the
// attempt: only when a failed read could be retried. Otherwise the buffer
// would only delay the status and headers and turn a partial answer into an
// error — for a POST without a key, whose response proves it was processed,
// the caller must see the status even if the body then stalls.
func (cl *call) buffers(n int) bool {
	c := &cl.t.cfg
	return c.respBuffer.limit > 0 && cl.idempotent && n+1 < c.maxAttempts && cl.src.rewindable &&
		cl.req.Method != http.MethodHead && !isStreaming(cl.ctx)
}

// holdable reports whether resp is one whose body may be held back until it
// is read whole: it may fit in limit bytes, and it is no stream.
func holdable(resp *http.Response, limit int64) bool {
	switch {
	case resp.StatusCode < 200: // 101 Switching Protocols: the body is the connection
		return false
	case resp.Body == http.NoBody:
		return false
	case resp.ContentLength > limit:
		return false
	}
	return !streamingType(resp.Header.Get("Content-Type"))
}

// streamingType reports whether a Content-Type names a format whose
// messages are meant to be used as they arrive: server-sent events (WHATWG
// HTML §9.2), newline-delimited JSON (x-ndjson, jsonl), JSON text sequences
// (RFC 7464) and multipart/x-mixed-replace (camera feeds). Other streams are
// marked by the caller with Streaming.
func streamingType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";") // parameters (charset, boundary) do not matter
	mt = strings.TrimSpace(mt)
	for _, s := range streamingTypes {
		if strings.EqualFold(mt, s) {
			return true
		}
	}
	return false
}

var streamingTypes = [...]string{"text/event-stream", "application/x-ndjson", "application/jsonl",
	"application/json-seq", "multipart/x-mixed-replace"}

// buffer reads the body of a holdable resp, at most limit bytes, under the
// body idle timeout of the layers below, the caller's context and the stall
// bound (see stallWatch). A body that ends within limit bytes is replaced by
// an in-memory body with the same bytes; headers, trailers (filled in
// resp.Trailer by net/http at EOF, on this same resp) and ContentLength stay
// as they are (-1 stays -1). A longer body is handed on as the bytes read so
// far followed by the rest from the wire. A read that fails closes the body
// and returns the error, which the attempt then reports instead of resp.
func (cl *call) buffer(resp *http.Response, n int) error {
	rb := &cl.t.cfg.respBuffer
	if !holdable(resp, rb.limit) {
		return nil
	}
	live := resp.Body
	var w *stallWatch
	if dl, ok := cl.ctx.Deadline(); ok {
		w = rb.watchStalls(live, dl, cl.cutFloor(n))
	}
	var buf []byte
	if resp.ContentLength >= 0 {
		// +1: room to see EOF, or a body longer than declared.
		buf = make([]byte, 0, min(rb.limit+1, resp.ContentLength+1))
	} else {
		sp := rb.scratch.Get().(*[]byte)
		defer rb.scratch.Put(sp)
		buf = (*sp)[:0]
	}
	buf, eof, err := readPrefix(live, buf, rb.limit, w)
	if err == nil && resp.ContentLength < 0 {
		buf = bytes.Clone(buf) // out of the scratch buffer, at its own length
	}
	if err != nil {
		live.Close()
		if ctx := cl.ctx; ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w: %w", ctxErr(ctx, ctx.Err()), err)
		}
		return fmt.Errorf("reading the body of a %d response: %w", resp.StatusCode, err)
	}
	if !eof {
		// Longer than the buffer: never held back any further.
		resp.Body = &prefixBody{Reader: io.MultiReader(bytes.NewReader(buf), live), live: live}
		return nil
	}
	live.Close() // read to EOF: its connection is back in the pool already
	resp.Body = body.NewInMemory(buf)
	return nil
}

// cutFloor is the least time a cut of attempt n's stalled body must leave for
// the retry after it to be made: the longest backoff before that retry, and
// twice the least time worth an attempt (the deadline check of decide asks
// for one). With less, decide would refuse the retry for the deadline, and the
// cut would only have traded a late answer for a certain error.
func (cl *call) cutFloor(n int) time.Duration {
	c := &cl.t.cfg
	longest := c.max // a WithBackoffFunc backoff: its bound
	if c.backoffFunc == nil {
		longest = equalJitter(c.initial, c.max, n, func(k int64) int64 { return k - 1 }) // its ceiling
	}
	return longest + 2*minAttemptTime
}

// readPrefix reads rc into buf until EOF or until more than limit bytes
// arrived, whichever is first; buf, when too small, grows up to limit+1 bytes.
// eof reports that the body ended. w, when not nil, watches the reads for a
// stall; it is stopped before readPrefix returns.
func readPrefix(rc io.Reader, buf []byte, limit int64, w *stallWatch) (_ []byte, eof bool, err error) {
	if w != nil {
		defer w.stop()
	}
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > limit {
				return buf, false, nil
			}
			grown := make([]byte, len(buf), min(2*int64(cap(buf)), limit+1))
			copy(grown, buf)
			buf = grown
		}
		n, err := rc.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if w != nil {
			if serr := w.progress(); serr != nil {
				return buf, false, serr
			}
		}
		switch {
		case err == io.EOF:
			return buf, true, nil
		case err != nil:
			return buf, false, err
		}
	}
}

// stallWatch gives up a buffered body that waits for a byte longer than half
// the time left before the caller's deadline, by closing it (which unblocks
// the read, as the body idle timeout does). A body so stalled is given up for
// another attempt, which then has at least as long as the gap took: with only
// the idle timeout of 8 s in a budget of 10 s, a second stall would fail the
// call. A body that trickles but keeps coming is never cut, however long the
// whole read takes (the caller's deadline bounds it).
//
// Once half the time left is less than floor (see cutFloor), another attempt
// would not fit, and cutting the body would only trade a late answer for a
// certain error: the watch ends, and the read waits for the body until the
// caller's deadline.
//
// One timer serves the whole read: a read only notes when it returned, and
// the timer, when it fires, re-arms itself for the rest of the gap if a read
// returned since it was set. A watch whose timer never fired goes back to
// the layer's pool and serves the next read with Reset: every buffered body
// has a watch, and a new one costs three allocations (the watch, its timer
// and the timer's function). A timer made inside a testing/synctest bubble
// belongs to it, so such watches are never pooled, and the pool is not used
// inside a bubble (clock.InBubble).
type stallWatch struct {
	rc      io.Closer
	start   time.Time     // when the watch began (a monotonic clock reading)
	left    time.Duration // time left before the caller's deadline at start
	floor   time.Duration // the shortest bound worth a cut
	last    atomic.Int64  // when the last read returned, as a time.Duration since start
	timer   *time.Timer
	mu      sync.Mutex // orders the timer's Close against stop
	stopped bool
	stalled time.Duration // the gap that stalled the body; 0 while none did
	pool    *sync.Pool    // where stop puts the watch back; nil: never pooled
}

// watchStalls starts watching the reads of rc; it returns nil when the
// deadline is already too close for a cut to be worth it.
func (rb *responseBuffer) watchStalls(rc io.Closer, deadline time.Time, floor time.Duration) *stallWatch {
	now := time.Now()
	left := deadline.Sub(now)
	if stallBound(left, 0) < floor {
		return nil
	}
	var pool *sync.Pool
	if !clock.InBubble(now) {
		pool = rb.watches
	}
	if pool != nil {
		if w, _ := pool.Get().(*stallWatch); w != nil {
			// Its timer was stopped before it fired, and nothing else
			// holds the watch: no goroutine can read these fields now.
			w.rc, w.start, w.left, w.floor, w.stopped, w.stalled = rc, now, left, floor, false, 0
			w.last.Store(0)
			w.timer.Reset(w.bound(0))
			return w
		}
	}
	w := &stallWatch{rc: rc, start: now, left: left, floor: floor, pool: pool}
	w.mu.Lock() // check must not run before w.timer is set
	w.timer = time.AfterFunc(w.bound(0), w.check)
	w.mu.Unlock()
	return w
}

// bound is the longest gap allowed after a read that returned at start+t.
func (w *stallWatch) bound(t time.Duration) time.Duration { return stallBound(w.left, t) }

// stallBound is half the time left after a read that returned t into a
// watch that began with left before the deadline.
func stallBound(left, t time.Duration) time.Duration { return max((left-t)/2, time.Nanosecond) }

func (w *stallWatch) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	last := time.Duration(w.last.Load())
	bound := w.bound(last)
	if bound < w.floor {
		return // too late for another attempt: the caller's deadline bounds the read
	}
	if gap := time.Since(w.start) - last; gap < bound {
		w.timer.Reset(bound - gap) // a read returned since the timer was set
		return
	}
	w.stalled = bound
	w.rc.Close()
}

// progress notes that a read returned, and reports the stall that ended it.
func (w *stallWatch) progress() error {
	w.last.Store(int64(time.Since(w.start)))
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stalled > 0 {
		return &stallError{gap: w.stalled}
	}
	return nil
}

// stop ends the watch: it never closes the body afterwards. A watch whose
// timer had not fired (Stop reports it, and its function then never runs)
// goes back to its pool; the caller must not use it after stop.
func (w *stallWatch) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	if w.timer.Stop() && w.pool != nil {
		w.rc = nil
		w.pool.Put(w)
	}
}

// stallError is the error of a buffered body read that waited for a byte
// longer than half the time left. Like a body idle timeout, it is a timeout
// and matches os.ErrDeadlineExceeded.
type stallError struct{ gap time.Duration }

func (e *stallError) Error() string {
	return "response body stalled: no byte for " + e.gap.Round(time.Millisecond).String() + ", half the time left"
}
func (*stallError) Timeout() bool        { return true }
func (*stallError) Temporary() bool      { return true } // completes net.Error
func (*stallError) Is(target error) bool { return target == os.ErrDeadlineExceeded }

// prefixBody is a body longer than the buffer: what was read, then the rest
// of the live body as it arrives. Close closes the live body.
type prefixBody struct {
	io.Reader
	live io.ReadCloser
}

func (b *prefixBody) Close() error { return b.live.Close() }
