package chaos

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/outboundhttp/outbound/internal/body"
	"github.com/outboundhttp/outbound/internal/idle"
)

// Transport is an http.RoundTripper that injects the faults of a scenario
// into the requests it passes to the next RoundTripper. It is safe for
// concurrent use; its scenario clock starts at NewTransport.
//
// The state of a Capacity fault (its queue, workers and requests in flight)
// lives in the Transport, shared by all the requests it matches.
//
// It keeps the RoundTripper contract as a real transport would: a failure is
// an error with no response, an injected status is a well-formed response
// (Request, Proto, Header, ContentLength and a non-nil Body), the request
// body is closed when the Transport answers without calling next, and a
// slowed body releases its resources when it is closed or read to its end.
type Transport struct {
	next  http.RoundTripper
	eng   *engine
	sleep sleeper
}

var _ http.RoundTripper = (*Transport)(nil)

// NewTransport returns a Transport that injects the faults given by opts
// (WithScenario, WithFaults) in front of next; a nil next means
// http.DefaultTransport. It panics if a fault is invalid (a probability
// outside [0, 1], an empty window, a status outside 200-999, ...).
func NewTransport(next http.RoundTripper, opts ...Option) *Transport {
	if next == nil {
		next = http.DefaultTransport
	}
	c := newConfig(opts)
	return &Transport{
		next:  next,
		eng:   newEngine("NewTransport", c.faults, c.seed, time.Now()),
		sleep: c.sleep,
	}
}

// Middleware returns a middleware that wraps a RoundTripper in a Transport
// built with opts; each call of the returned function makes a new Transport
// with its own generator and clock start.
func Middleware(opts ...Option) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper { return NewTransport(next, opts...) }
}

// Restart makes now the start of the scenario: time windows and Count caps
// begin again. The generator carries on (it is not reseeded).
func (t *Transport) Restart() { t.eng.restart(time.Now()) }

// Stats returns how many requests the Transport saw and which faults fired.
func (t *Transport) Stats() Stats { return t.eng.stats() }

// CloseIdleConnections forwards to next when next has the method.
func (t *Transport) CloseIdleConnections() { idle.Close(t.next) }

// RoundTrip injects the faults that fire for req, passing it to next unless
// an injected answer replaces the upstream's.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	host := req.Host
	if req.URL != nil && req.URL.Host != "" {
		host = req.URL.Host
	}
	d := t.eng.decide(host, time.Now())
	if err := t.eng.wait(ctx, t.sleep, d); err != nil {
		body.CloseRequest(req)
		return nil, err
	}
	var resp *http.Response
	switch {
	case d.answer == nil:
		var err error
		if resp, err = t.send(req); err != nil {
			return nil, err
		}
	case d.answer.Kind.answersStatus():
		body.CloseRequest(req)
		resp = statusResponse(req, d.answer)
	default: // KindReset, KindHang
		if d.answer.Delivered {
			r, err := t.send(req)
			if err != nil {
				return nil, err
			}
			body.Discard(r)
		} else {
			body.CloseRequest(req)
		}
		if d.answer.Kind == KindReset {
			return nil, resetError(host)
		}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	// A 101 body is the connection itself (an io.Writer too): not slowed.
	if d.body != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body = newSlowBody(ctx, resp.Body, d.body, t.sleep)
	}
	return resp, nil
}

func (t *Transport) send(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	return body.Checked(resp, err, "chaos")
}

// statusResponse synthesizes the answer of a KindStatus fault, shaped like
// one net/http.Transport returns.
func statusResponse(req *http.Request, f *Fault) *http.Response {
	text := "chaos: injected " + strconv.Itoa(f.Status) + " " + http.StatusText(f.Status) + "\n"
	h := f.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	var rc io.ReadCloser = http.NoBody
	if f.Status == http.StatusNoContent || f.Status == http.StatusNotModified || req.Method == http.MethodHead {
		text = "" // no content (RFC 9110 §9.3.2, §15.3.5, §15.4.5), as net/http returns it
	} else {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Content-Length", strconv.Itoa(len(text)))
		rc = readCloser{strings.NewReader(text)}
	}
	status := strconv.Itoa(f.Status)
	if st := http.StatusText(f.Status); st != "" {
		status += " " + st
	}
	return &http.Response{
		Status:        status,
		StatusCode:    f.Status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          rc,
		ContentLength: int64(len(text)),
		Request:       req,
	}
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }

// resetError returns the error a real transport gives when the peer resets
// the connection, so classifiers that look for syscall.ECONNRESET (and
// net.Error) see the injected reset as the real thing.
func resetError(host string) error {
	return &net.OpError{
		Op:   "read",
		Net:  "tcp",
		Addr: hostAddr(host),
		Err:  os.NewSyscallError("read", syscall.ECONNRESET),
	}
}

type hostAddr string

func (hostAddr) Network() string  { return "tcp" }
func (a hostAddr) String() string { return string(a) }

// ErrBodyClosed is returned by Read on a slowed body after Close.
var ErrBodyClosed = errors.New("chaos: read on closed response body")

// slowBody stalls or trickles a response body. Its context is derived from
// the request's and canceled on Close, on EOF or on a read error, which
// unblocks a pending Read and releases the context.
type slowBody struct {
	rc     io.ReadCloser
	ctx    context.Context
	cancel context.CancelFunc
	sleep  sleeper
	kind   Kind
	bytes  int
	every  time.Duration
	sent   int // bytes delivered, for a stall
	closed atomic.Bool
}

func newSlowBody(ctx context.Context, rc io.ReadCloser, f *Fault, sleep sleeper) *slowBody {
	if rc == nil {
		rc = http.NoBody
	}
	ctx, cancel := context.WithCancel(ctx)
	return &slowBody{
		rc: rc, ctx: ctx, cancel: cancel, sleep: sleep,
		kind: f.Kind, bytes: f.Bytes, every: f.Every,
	}
}

func (b *slowBody) Read(p []byte) (int, error) {
	if err := b.wait(); err != nil {
		return 0, err
	}
	if b.kind == KindStall {
		if left := b.bytes - b.sent; len(p) > left {
			p = p[:left]
		}
	} else if len(p) > b.bytes {
		p = p[:b.bytes]
	}
	n, err := b.rc.Read(p)
	b.sent += n
	if err != nil {
		b.cancel()
	}
	return n, err
}

// wait blocks before a read: until the end once a stalled body has delivered
// its bytes, or one interval before each chunk of a trickle.
func (b *slowBody) wait() error {
	var err error
	switch {
	case b.kind == KindStall && b.sent >= b.bytes:
		<-b.ctx.Done()
		err = b.ctx.Err()
	case b.kind == KindTrickle:
		err = b.sleep(b.ctx, b.every)
	default:
		err = b.ctx.Err()
	}
	if err != nil {
		b.cancel()
		if b.closed.Load() {
			return ErrBodyClosed
		}
	}
	return err
}

// Close unblocks a pending Read, releases the body's context and closes the
// underlying body.
func (b *slowBody) Close() error {
	b.closed.Store(true)
	b.cancel()
	return b.rc.Close()
}
