package base

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/outboundhttp/outbound/internal/body"
)

// ErrWriteTimeout is returned by RoundTrip when the request body made no
// progress for the write timeout (see WithWriteTimeout): the transport did not
// ask for more of the body for that long, because the upstream stopped
// reading and the socket write blocked. The error returned names the timeout
// ("no progress for 5s") and matches errors.Is(err, ErrWriteTimeout) and
// errors.Is(err, os.ErrDeadlineExceeded); its Timeout method reports true,
// like the deadline errors of net.Conn and ErrBodyIdle.
var ErrWriteTimeout error = writeTimeoutError{}

type writeTimeoutError struct{ d time.Duration }

func (e writeTimeoutError) Error() string {
	if e.d <= 0 {
		return "base: request body write timeout"
	}
	return "base: request body write timeout: no progress for " + e.d.String()
}

func (writeTimeoutError) Timeout() bool   { return true }
func (writeTimeoutError) Temporary() bool { return true } // completes net.Error

func (writeTimeoutError) Is(target error) bool {
	_, ok := target.(writeTimeoutError)
	return ok || target == os.ErrDeadlineExceeded
}

// writeWatch is the write timer of one request. net/http bounds the dial, the
// TLS handshake and the wait for the response headers, but the headers timer
// starts only once the request is written: an upstream that stops reading the
// body leaves the write blocked until the caller's context ends. The timer
// runs only while the transport is outside the body's Read, waiting to send
// what it read, so a caller's reader that is slow to produce is not blamed on
// the upstream (the write-side twin of idleTimeoutBody). On expiry it cancels
// the attempt's context with the error as the cause; net/http then closes the
// connection (HTTP/1) or resets the stream (HTTP/2).
type writeWatch struct {
	timeout time.Duration
	cancel  context.CancelCauseFunc
	getBody func() (io.ReadCloser, error) // the caller's, for net/http's own rewinds
	first   watchedBody                   // the request's body, allocated with the watch

	mu      sync.Mutex
	timer   *time.Timer // created at the first progress, so waiting for a connection is not counted
	since   time.Time   // the last return from the body's Read, while armed
	armed   bool        // the body waits for the transport to ask for more
	pending bool        // timer is scheduled; expire reschedules it lazily instead of a Reset per Read
	stopped bool        // the response headers arrived or the attempt ended: never fire again
	fired   bool
}

// watchWrite returns a shallow clone of req (the caller's request is never
// modified) whose body and GetBody are watched, with a context of its own that
// the watch cancels. The caller must call finish with what the transport returns.
func watchWrite(req *http.Request, d time.Duration) (*writeWatch, *http.Request) {
	ctx, cancel := context.WithCancelCause(req.Context())
	w := &writeWatch{timeout: d, cancel: cancel, getBody: req.GetBody}
	w.first = watchedBody{rc: req.Body, w: w}
	clone := req.WithContext(ctx)
	clone.Body = &w.first
	if req.GetBody != nil {
		// net/http calls GetBody to resend on a new connection (HTTP/1 after
		// a reused connection died, HTTP/2 after GOAWAY or REFUSED_STREAM);
		// the resent body is watched too.
		clone.GetBody = w.rewind
	}
	return w, clone
}

func (w *writeWatch) rewind() (io.ReadCloser, error) {
	rc, err := w.getBody()
	if err != nil || rc == nil || rc == http.NoBody {
		return rc, err
	}
	return &watchedBody{rc: rc, w: w}, nil
}

// finish stops the timer and maps the transport's outcome: the write timeout
// when the watch canceled the attempt, and otherwise what the transport
// returned. The context lives until the caller is done with the response body
// (canceling it earlier would break the caller's reads); on an error it is
// released at once.
func (w *writeWatch) finish(ctx context.Context, resp *http.Response, err error) (*http.Response, error) {
	w.mu.Lock()
	w.stopped = true
	if w.timer != nil {
		w.timer.Stop()
	}
	fired := w.fired
	w.mu.Unlock()
	if fired {
		// expire may not have canceled yet; the first cause wins, so this
		// leaves a cancellation by the caller's context as it was.
		w.cancel(writeTimeoutError{w.timeout})
	}
	if fired && errors.Is(context.Cause(ctx), ErrWriteTimeout) {
		if resp != nil {
			// The headers raced the timer, which won: the response's context
			// is canceled, so its body could not be read anyway.
			resp.Body.Close()
		}
		return nil, writeTimeoutError{w.timeout}
	}
	if err != nil {
		w.cancel(nil)
		return nil, err
	}
	body.OnDone(resp, w.release)
	return resp, nil
}

func (w *writeWatch) release() { w.cancel(nil) }

// arm starts counting time from now; the lock must be held.
func (w *writeWatch) arm() {
	w.armed = true
	w.since = time.Now()
	if w.pending {
		return
	}
	w.pending = true
	if w.timer == nil {
		w.timer = time.AfterFunc(w.timeout, w.expire)
	} else {
		w.timer.Reset(w.timeout)
	}
}

func (w *writeWatch) expire() {
	w.mu.Lock()
	w.pending = false
	if w.stopped || !w.armed {
		// Done, or the transport is inside Read; the Read's return re-arms.
		w.mu.Unlock()
		return
	}
	if left := w.timeout - time.Since(w.since); left > 0 {
		// Progress since the timer was set: wait for the rest.
		w.pending = true
		w.timer.Reset(left)
		w.mu.Unlock()
		return
	}
	w.stopped, w.fired = true, true
	w.mu.Unlock()
	w.cancel(writeTimeoutError{w.timeout})
}

// maxWatchedRead caps each Read of a watched body, so that progress shows at
// least every 64 KiB sent. The HTTP/2 transport reads up to 512 KiB at once
// (its scratch buffer, when the server allows large frames) and then sends it
// in flow-controlled pieces the timer cannot see: an upstream reading slower
// than 512 KiB per timeout would be cut off while bytes still flow. HTTP/1.1
// reads 32 KiB at a time (io.Copy's buffer), so it is not affected.
const maxWatchedRead = 64 << 10

// watchedBody is a request body whose reads are progress for its writeWatch.
// It deliberately hides the io.WriterTo of the caller's body (and the *os.File
// behind it, which net/http would sendfile), so that every chunk the
// transport takes passes through Read.
type watchedBody struct {
	rc   io.ReadCloser
	w    *writeWatch
	sent bool // EOF, a read error or Close: this body no longer arms the timer; guarded by w.mu
}

func (b *watchedBody) Read(p []byte) (int, error) {
	w := b.w
	w.mu.Lock()
	if !b.sent {
		w.armed = false // the transport asks for more: progress
	}
	w.mu.Unlock()
	if len(p) > maxWatchedRead {
		p = p[:maxWatchedRead]
	}
	n, err := b.rc.Read(p)
	w.mu.Lock()
	switch {
	case b.sent:
	case err != nil:
		// io.EOF: the body is sent. Any other error is the caller's reader
		// failing, which the transport reports as it is.
		b.sent = true
	case !w.stopped:
		w.arm()
	}
	w.mu.Unlock()
	return n, err
}

func (b *watchedBody) Close() error {
	w := b.w
	w.mu.Lock()
	if !b.sent {
		b.sent = true
		w.armed = false
	}
	w.mu.Unlock()
	return b.rc.Close()
}
