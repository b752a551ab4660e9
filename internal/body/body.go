// Package body wraps response bodies so per-request resources (timers,
// context cancels, spans, concurrency slots) are released when the caller is
// done with the body — on Close or on reaching EOF or a read error — and not
// when RoundTrip returns, as net/http's cancelTimerBody does.
package body

import (
	"bytes"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// OnDone replaces resp.Body with a wrapper that calls done exactly once, when
// the body is closed or a read returns an error (io.EOF included). A nil
// resp.Body is treated as http.NoBody. The wrapper keeps io.Writer when the
// body has it (101 Switching Protocols responses), as net/http requires.
func OnDone(resp *http.Response, done func()) {
	rc := resp.Body
	if rc == nil || rc == http.NoBody {
		// Nothing left to read: release now, keep a non-nil body.
		resp.Body = http.NoBody
		done()
		return
	}
	if rwc, ok := rc.(io.ReadWriteCloser); ok {
		resp.Body = &writerBody{readerBody{rc: rwc, done: done}}
		return
	}
	resp.Body = &readerBody{rc: rc, done: done}
}

// Releaser is what a response's end releases, for Track.
type Releaser interface{ Release() }

// Tracker is OnDone's wrapper for a layer to embed in the value it allocates
// per response anyway, whose Release method is what the body's end calls:
// the wrapper and what it releases then take one allocation, where OnDone's
// wrapper and the closure given to it take two. The zero value is ready;
// a Tracker wraps one body, once (Track).
type Tracker struct {
	rc   io.ReadCloser
	done atomic.Bool
	r    Releaser
}

// Track is OnDone(resp, r.Release) with t as the wrapper: r.Release runs
// exactly once, when the body is closed or a read returns an error (io.EOF
// included), or at once for a nil body or http.NoBody. A body with
// io.Writer (101 Switching Protocols) gets OnDone's own wrapper, which keeps
// it. t must not be used for another response.
func Track(resp *http.Response, t *Tracker, r Releaser) {
	rc := resp.Body
	if rc == nil || rc == http.NoBody {
		resp.Body = http.NoBody
		r.Release()
		return
	}
	if _, ok := rc.(io.ReadWriteCloser); ok {
		OnDone(resp, r.Release)
		return
	}
	t.rc, t.r = rc, r
	resp.Body = t
}

// Read reads the wrapped body, releasing on its first error.
func (t *Tracker) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	if err != nil {
		t.release()
	}
	return n, err
}

// Close closes the wrapped body and releases.
func (t *Tracker) Close() error {
	err := t.rc.Close()
	t.release()
	return err
}

func (t *Tracker) release() {
	if t.done.CompareAndSwap(false, true) {
		t.r.Release()
	}
}

// InMemory is the mark of a response body that a layer below read whole
// into memory and owns, such as the retry layer's buffered bodies: its
// InMemory method reports true. Reading it waits on no connection and reads
// no context, so the per-request resources a layer above holds for the
// response (a timer, a context, a span, a concurrency slot) can be released
// as soon as the response is handed on, as for http.NoBody: canceling the
// call's context then cannot cut a read the caller is making, which is why
// the contract otherwise keeps them until the body is done.
type InMemory interface {
	io.ReadCloser
	InMemory() bool
}

// Settled reports whether rc holds nothing a layer must wait for before it
// releases the resources of its response: nil, http.NoBody, or an InMemory
// body.
func Settled(rc io.ReadCloser) bool {
	if rc == nil || rc == http.NoBody {
		return true
	}
	m, ok := rc.(InMemory)
	return ok && m.InMemory()
}

// NewInMemory returns a body that reads b, which it owns from now on, and is
// InMemory. Close is a no-op, so a Close racing a Read (as callers that
// abort reads from another goroutine do) is safe; reading after Close goes
// on reading.
func NewInMemory(b []byte) io.ReadCloser {
	m := &memBody{}
	m.Reset(b)
	return m
}

type memBody struct{ bytes.Reader }

func (*memBody) Close() error   { return nil }
func (*memBody) InMemory() bool { return true }

type readerBody struct {
	rc   io.ReadCloser
	once sync.Once
	done func()
}

func (b *readerBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil {
		b.once.Do(b.done)
	}
	return n, err
}

func (b *readerBody) Close() error {
	err := b.rc.Close()
	b.once.Do(b.done)
	return err
}

type writerBody struct{ readerBody }

func (b *writerBody) Write(p []byte) (int, error) {
	return b.rc.(io.Writer).Write(p)
}

// DrainLimit is how much of a discarded response body is read so that its
// connection can be reused; a longer body is closed instead, which costs the
// connection but bounds the work.
const DrainLimit = 64 << 10

// DrainTimeout bounds how long draining a discarded body may take; a body that
// trickles is closed instead.
const DrainTimeout = 100 * time.Millisecond

// Discard drains up to DrainLimit bytes of resp.Body, for no longer than
// DrainTimeout, then closes it. Use it for every response a layer throws away
// (a retried attempt), so the connection goes back to the pool.
func Discard(resp *http.Response) {
	if resp == nil || resp.Body == nil {
		return
	}
	rc := resp.Body
	// Closing an HTTP body unblocks a pending Read, so the timer bounds the drain.
	t := time.AfterFunc(DrainTimeout, func() { rc.Close() })
	io.CopyN(io.Discard, rc, DrainLimit)
	t.Stop()
	rc.Close()
}

// CloseRequest closes req.Body if there is one. RoundTrippers must close the
// request body on every path, also when they refuse a request before sending it.
func CloseRequest(req *http.Request) {
	if req != nil && req.Body != nil {
		req.Body.Close()
	}
}

// Keep reads resp.Body into memory when it is at most DrainLimit bytes long
// and arrives within DrainTimeout, closes the original (so its connection is
// reused, as with Discard) and gives resp an in-memory body instead; it
// reports whether it did. Otherwise the body is closed and resp must not be
// used. The retry layer keeps the response it retried this way, so it can
// still hand it to the caller if the next attempt is refused locally.
func Keep(resp *http.Response) bool {
	if resp == nil || resp.Body == nil || resp.Body == http.NoBody {
		if resp != nil {
			resp.Body = http.NoBody
		}
		return resp != nil
	}
	rc := resp.Body
	t := time.AfterFunc(DrainTimeout, func() { rc.Close() })
	buf, err := io.ReadAll(io.LimitReader(rc, DrainLimit+1))
	stopped := t.Stop()
	rc.Close()
	if err != nil || !stopped || len(buf) > DrainLimit {
		return false
	}
	resp.Body = NewInMemory(buf)
	resp.ContentLength = int64(len(buf))
	return true
}
