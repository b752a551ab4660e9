package retry

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/internal/contracttest"
)

// wireBody is a response body as the wire gives it: chunks, each after its
// own pause (0: at once), then end, which is io.EOF, an error, or a stall
// (errStall: no more bytes until Close). Reads record what happened.
type wireBody struct {
	mu      sync.Mutex
	chunks  []string
	pauses  []time.Duration
	end     error
	trailer func() // called at EOF, as net/http fills resp.Trailer
	closed  chan struct{}
	once    sync.Once
	read    int // bytes handed out
	eof     bool
	isClose bool
}

var errStall = errors.New("stall: no byte until Close")

func newWire(end error, chunks ...string) *wireBody {
	return &wireBody{chunks: chunks, end: end, closed: make(chan struct{})}
}

func (b *wireBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	if len(b.chunks) == 0 {
		end := b.end
		b.mu.Unlock()
		switch end {
		case errStall:
			<-b.closed
			return 0, errors.New("http: read on closed response body")
		case io.EOF:
			b.mu.Lock()
			b.eof = true
			b.mu.Unlock()
			if b.trailer != nil {
				b.trailer()
			}
		}
		return 0, end
	}
	var pause time.Duration
	if len(b.pauses) > 0 {
		pause, b.pauses = b.pauses[0], b.pauses[1:]
	}
	b.mu.Unlock()
	if pause > 0 {
		select {
		case <-time.After(pause):
		case <-b.closed:
			return 0, errors.New("http: read on closed response body")
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n := copy(p, b.chunks[0])
	if b.chunks[0] = b.chunks[0][n:]; b.chunks[0] == "" {
		b.chunks = b.chunks[1:]
	}
	b.read += n
	return n, nil
}

func (b *wireBody) Close() error {
	b.once.Do(func() {
		b.mu.Lock()
		b.isClose = true
		b.mu.Unlock()
		close(b.closed)
	})
	return nil
}

func (b *wireBody) state() (read int, eof, closed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.read, b.eof, b.isClose
}

// answers is a fake next whose attempt i gets the response resps[i] makes.
type answers struct {
	mu    sync.Mutex
	resps []func(*http.Request) *http.Response
	n     int
}

func (a *answers) RoundTrip(r *http.Request) (*http.Response, error) {
	a.mu.Lock()
	i := a.n
	a.n++
	a.mu.Unlock()
	resp := a.resps[min(i, len(a.resps)-1)](r)
	resp.Request = r
	return resp, nil
}

func (a *answers) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

func answer(code int, length int64, b io.ReadCloser, kv ...string) func(*http.Request) *http.Response {
	return func(*http.Request) *http.Response {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return &http.Response{StatusCode: code, Header: h, Body: b, ContentLength: length}
	}
}

func get(t *testing.T, ctx context.Context) *http.Request {
	return mustRequest(t, ctx, http.MethodGet, "http://api.test/x", nil)
}

func TestResponseBufferFits(t *testing.T) {
	for _, tt := range []struct {
		name   string
		code   int
		length int64
		n      int64
	}{
		{"declared length", 200, 11, 64},
		{"undeclared length", 200, -1, 64},
		{"declared length equal to n", 200, 11, 11},
		{"undeclared length equal to n", 200, -1, 11},
		{"a status that is not retried", 404, 11, 64},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWire(io.EOF, "hello", " world")
			next := &answers{resps: []func(*http.Request) *http.Response{answer(tt.code, tt.length, w, "Content-Type", "application/json", "X-Up", "1")}}
			resp, err := NewTransport(next, WithResponseBuffer(tt.n)).RoundTrip(get(t, context.Background()))
			if err != nil {
				t.Fatal(err)
			}
			// Read inside the attempt: the wire body is done before the caller reads.
			if read, eof, closed := w.state(); read != 11 || !eof || !closed {
				t.Errorf("wire body after RoundTrip: read %d, EOF %v, closed %v; want 11, true, true", read, eof, closed)
			}
			if resp.ContentLength != tt.length || resp.Header.Get("X-Up") != "1" {
				t.Errorf("ContentLength %d, X-Up %q; want %d, \"1\" (unchanged)", resp.ContentLength, resp.Header.Get("X-Up"), tt.length)
			}
			if got := readAll(t, resp); got != "hello world" {
				t.Errorf("body %q; want %q", got, "hello world")
			}
		})
	}
}

// A body longer than n is handed on as the bytes read so far followed by the
// rest from the wire, each part as soon as it comes.
func TestResponseBufferLongerThanN(t *testing.T) {
	pr, pw := io.Pipe()
	next := &answers{resps: []func(*http.Request) *http.Response{answer(200, -1, pr)}}
	go func() { pw.Write([]byte("0123456789")) }() // more than n = 4
	resp, err := NewTransport(next, WithResponseBuffer(4)).RoundTrip(get(t, context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	var got []byte
	for len(got) < 10 {
		n, err := resp.Body.Read(buf)
		if err != nil {
			t.Fatalf("read after %q: %v", got, err)
		}
		got = append(got, buf[:n]...)
	}
	// The wire has not ended: the next bytes reach the caller as they come.
	go func() { pw.Write([]byte("later")) }()
	n, err := io.ReadAtLeast(resp.Body, buf, 5)
	if err != nil || string(buf[:n]) != "later" {
		t.Fatalf("next read %q, %v; want \"later\" while the wire is still open", buf[:n], err)
	}
	if string(got) != "0123456789" {
		t.Errorf("first bytes %q; want %q", got, "0123456789")
	}
	resp.Body.Close()
	if _, err := pw.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("Close did not close the live body: write after it gave %v", err)
	}
}

// Responses that must not be held back pass through unread.
func TestResponseBufferPassesThrough(t *testing.T) {
	for _, tt := range []struct {
		name   string
		ctx    func() context.Context
		method string
		code   int
		length int64
		kv     []string
		opts   []Option
		body   io.Reader
	}{
		{name: "declared length over n", length: 65, code: 200},
		{name: "text/event-stream", length: -1, code: 200, kv: []string{"Content-Type", "text/event-stream; charset=utf-8"}},
		{name: "ndjson", length: -1, code: 200, kv: []string{"Content-Type", "application/x-ndjson"}},
		{name: "caller asked to stream", length: 5, code: 200, ctx: func() context.Context { return Streaming(context.Background()) }},
		{name: "HEAD", method: http.MethodHead, length: 5, code: 200},
		{name: "POST without a key: a failed read could not be retried", method: http.MethodPost, length: 5, code: 201},
		{name: "last attempt: a failed read could not be retried", length: 5, code: 200, opts: []Option{WithMaxAttempts(1)}},
		{name: "body not rewindable", method: http.MethodPut, body: noGetBody{strings.NewReader("req")}, length: 5, code: 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.ctx != nil {
				ctx = tt.ctx()
			}
			method := http.MethodGet
			if tt.method != "" {
				method = tt.method
			}
			w := newWire(io.EOF, "hello")
			next := &answers{resps: []func(*http.Request) *http.Response{answer(tt.code, tt.length, w, tt.kv...)}}
			opts := append([]Option{WithResponseBuffer(64)}, tt.opts...)
			resp, err := NewTransport(next, opts...).RoundTrip(mustRequest(t, ctx, method, "http://api.test/x", tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if read, _, _ := w.state(); read != 0 {
				t.Errorf("read %d bytes before RoundTrip returned; want none", read)
			}
			if got := readAll(t, resp); got != "hello" {
				t.Errorf("body %q; want %q", got, "hello")
			}
		})
	}
}

type upgradeBody struct{ *wireBody }

func (upgradeBody) Write(p []byte) (int, error) { return len(p), nil }

func TestResponseBufferSwitchingProtocolsKeepsWriter(t *testing.T) {
	w := upgradeBody{newWire(io.EOF, "pong")}
	next := &answers{resps: []func(*http.Request) *http.Response{answer(http.StatusSwitchingProtocols, -1, w)}}
	resp, err := NewTransport(next, WithResponseBuffer(64), WithAttemptTimeout(time.Minute)).RoundTrip(get(t, context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, ok := resp.Body.(io.Writer); !ok {
		t.Fatalf("101 body is a %T without io.Writer", resp.Body)
	}
	if read, _, _ := w.state(); read != 0 {
		t.Errorf("read %d bytes of the connection; want none", read)
	}
}

func TestResponseBufferTrailers(t *testing.T) {
	w := newWire(io.EOF, "chunked body")
	var resp0 *http.Response
	w.trailer = func() { resp0.Trailer.Set("X-Checksum", "abc") } // as net/http: filled at EOF
	next := &answers{resps: []func(*http.Request) *http.Response{func(*http.Request) *http.Response {
		resp0 = &http.Response{StatusCode: 200, Header: http.Header{}, Body: w, ContentLength: -1,
			Trailer: http.Header{"X-Checksum": nil}}
		return resp0
	}}}
	resp, err := NewTransport(next).RoundTrip(get(t, context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Trailer.Get("X-Checksum"); got != "abc" {
		t.Errorf("Trailer X-Checksum %q; want \"abc\" (filled by the read inside the attempt)", got)
	}
	if got := readAll(t, resp); got != "chunked body" {
		t.Errorf("body %q", got)
	}
}

// failures are the ways a body read can fail after the first bytes, with the
// reason the retry is reported under.
func failures() []struct {
	name   string
	end    error
	reason string
} {
	return []struct {
		name   string
		end    error
		reason string
	}{
		{"stall", errStall, "timeout"},
		{"idle timeout below", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, "timeout"},
		{"reset", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, "connection_reset"},
		{"short body", io.ErrUnexpectedEOF, "eof"},
	}
}

// A body that stalls, is reset or ends short while the attempt reads it is a
// failed attempt: retried, its partial body closed and never handed out, and
// the next attempt's body delivered.
func TestResponseBufferFailedReadRetried(t *testing.T) {
	for _, tt := range failures() {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				bad := newWire(tt.end, `{"st`)
				good := newWire(io.EOF, `{"status":"ok"}`)
				next := &answers{resps: []func(*http.Request) *http.Response{answer(200, 15, bad), answer(200, 15, good)}}
				var infos []RetryInfo
				rec := &contracttest.Recorder{}
				start := time.Now()
				resp, err := NewTransport(next, WithOnRetry(func(i RetryInfo) { infos = append(infos, i) })).
					RoundTrip(get(t, callctx.WithRecorder(ctx, rec)))
				if err != nil {
					t.Fatal(err)
				}
				if got := readAll(t, resp); got != `{"status":"ok"}` {
					t.Errorf("body %q; want the second attempt's", got)
				}
				if _, _, closed := bad.state(); !closed {
					t.Error("the failed attempt's body was not closed")
				}
				if len(infos) != 1 || infos[0].Reason != tt.reason || infos[0].Err == nil || infos[0].StatusCode != 0 {
					t.Fatalf("retries %+v; want one, reason %q, with the read error", infos, tt.reason)
				}
				if tt.end == errStall {
					// Given up after half the time left, leaving as much for the retry.
					if d := time.Since(start); d < 5*time.Second || d > 5*time.Second+DefaultMaxBackoff {
						t.Errorf("stalled attempt given up after %v; want 5s (half of 10s) plus the backoff", d)
					}
					if !errors.Is(infos[0].Err, os.ErrDeadlineExceeded) {
						t.Errorf("stall error %v does not match os.ErrDeadlineExceeded", infos[0].Err)
					}
				}
				if next.count() != 2 {
					t.Errorf("%d attempts; want 2", next.count())
				}
			})
		})
	}
}

// A trickle is no stall: gaps shorter than the bound are waited out, however
// long the whole read takes.
func TestResponseBufferTrickleReadToTheEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		w := newWire(io.EOF, strings.Split(strings.Repeat("x", 40), "")...)
		for range 40 {
			w.pauses = append(w.pauses, time.Second) // 40 s in all, more than half of 60 s
		}
		next := &answers{resps: []func(*http.Request) *http.Response{answer(200, 40, w)}}
		resp, err := NewTransport(next).RoundTrip(get(t, ctx))
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, resp); got != strings.Repeat("x", 40) || next.count() != 1 {
			t.Errorf("body %q after %d attempts; want 40 bytes from one", got, next.count())
		}
	})
}

// Near the deadline, when half the time left is less than the backoff and an
// attempt need (220 ms before the first retry by default), a slow body is no
// longer cut for another attempt that would not fit: the read waits for it
// until the caller's deadline.
func TestResponseBufferNoCutNearTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		w := newWire(errStall, strings.Split(strings.Repeat("x", 100), "")...)
		for range 100 {
			w.pauses = append(w.pauses, 150*time.Millisecond) // cut only once less than 300 ms are left
		}
		next := &answers{resps: []func(*http.Request) *http.Response{func(r *http.Request) *http.Response {
			context.AfterFunc(r.Context(), func() { w.Close() })
			return answer(200, -1, w)(r)
		}}}
		start := time.Now()
		resp, err := NewTransport(next).RoundTrip(get(t, ctx))
		if resp != nil {
			resp.Body.Close()
			t.Fatal("got a response; want the deadline's error")
		}
		if !errors.Is(err, context.DeadlineExceeded) || next.count() != 1 || time.Since(start) != time.Second {
			t.Fatalf("err %v after %d attempts and %v; want context.DeadlineExceeded after 1 attempt and 1s", err, next.count(), time.Since(start))
		}
	})
}

// A cut always leaves the retry room: with fast backoff an endless trickle
// whose gaps grow past half the time left is cut while the next attempt still
// fits, and the call ends with the caller's deadline, never with a retry
// refused for it.
func TestResponseBufferCutLeavesRoomForTheRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		endless := func(r *http.Request) *http.Response {
			w := newWire(errStall, strings.Split(strings.Repeat("x", 1000), "")...)
			for range 1000 {
				w.pauses = append(w.pauses, 30*time.Millisecond)
			}
			context.AfterFunc(r.Context(), func() { w.Close() })
			return answer(200, -1, w)(r)
		}
		var infos []RetryInfo
		next := &answers{resps: []func(*http.Request) *http.Response{endless}}
		resp, err := NewTransport(next, WithBackoff(5*time.Millisecond, 20*time.Millisecond),
			WithOnRetry(func(i RetryInfo) { infos = append(infos, i) })).RoundTrip(get(t, ctx))
		if resp != nil {
			resp.Body.Close()
			t.Fatal("got a response; want the deadline's error")
		}
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrDeadline) {
			t.Fatalf("err %v; want context.DeadlineExceeded, not ErrDeadline", err)
		}
		for _, i := range infos {
			if i.Refused != "" {
				t.Errorf("retry after attempt %d refused (%s); a cut must leave room for it", i.Attempt, i.Refused)
			}
		}
		if len(infos) == 0 {
			t.Error("no cut at all; want the stalled trickle cut once while a retry fits")
		}
	})
}

// Without a retry left, a failed read is the call's error, wrapping the read
// error; the response is closed, never returned alongside it.
func TestResponseBufferFailedReadNotRetried(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []Option
		stop error
	}{
		{"retry budget spent", []Option{WithRetryBudget(0, time.Second, 0)}, ErrBudget},
		{"retries refused by a policy", []Option{WithCheckRetry(func(context.Context, *http.Response, error) (bool, error) { return false, nil })}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bad := newWire(io.ErrUnexpectedEOF, "part")
			next := &answers{resps: []func(*http.Request) *http.Response{answer(200, 10, bad)}}
			resp, err := NewTransport(next, tt.opts...).RoundTrip(get(t, context.Background()))
			if resp != nil {
				resp.Body.Close()
				t.Fatalf("got a response with status %d; want the read error", resp.StatusCode)
			}
			var re *Error
			if !errors.As(err, &re) || !errors.Is(err, io.ErrUnexpectedEOF) || re.Stop != tt.stop {
				t.Fatalf("err %v; want a *Error wrapping io.ErrUnexpectedEOF, Stop %v", err, tt.stop)
			}
			if !strings.Contains(err.Error(), "reading the body of a 200 response") {
				t.Errorf("err %q; want it to say the body read failed", err)
			}
			if _, _, closed := bad.state(); !closed || next.count() != 1 {
				t.Errorf("closed %v after %d attempts; want closed after 1", closed, next.count())
			}
		})
	}
}

// The caller giving up during the read ends the call with an error matching
// its context's, and nothing is retried. (A deadline cannot pass during the
// read: each wait for a byte is bounded by half the time left.)
func TestResponseBufferCallerCancelsDuringRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := newWire(io.EOF, "a", "b")
		w.pauses = []time.Duration{0, time.Second}
		// A body that honours the request context, as net/http's does.
		next := &answers{resps: []func(*http.Request) *http.Response{func(r *http.Request) *http.Response {
			context.AfterFunc(r.Context(), func() { w.Close() })
			return answer(200, 2, w)(r)
		}}}
		time.AfterFunc(500*time.Millisecond, cancel)
		resp, err := NewTransport(next).RoundTrip(get(t, ctx))
		if resp != nil {
			resp.Body.Close()
			t.Fatal("got a response; want the context's error")
		}
		if !errors.Is(err, context.Canceled) || next.count() != 1 {
			t.Fatalf("err %v after %d attempts; want context.Canceled after 1", err, next.count())
		}
	})
}

// The attempt's timer lives until the caller is done with the body.
func TestResponseBufferAttemptTimeoutReleasedOnDone(t *testing.T) {
	var actx context.Context
	w := newWire(io.EOF, "hello")
	next := &answers{resps: []func(*http.Request) *http.Response{func(r *http.Request) *http.Response {
		actx = r.Context()
		return answer(200, 5, w)(r)
	}}}
	resp, err := NewTransport(next, WithAttemptTimeout(time.Minute)).RoundTrip(get(t, context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	if actx.Err() != nil {
		t.Fatal("the attempt's context ended when RoundTrip returned")
	}
	readAll(t, resp)
	if actx.Err() == nil {
		t.Fatal("the attempt's context is alive after the body was read and closed")
	}
}

func TestResponseBufferOff(t *testing.T) {
	w := newWire(io.EOF, "hello")
	next := &answers{resps: []func(*http.Request) *http.Response{answer(200, 5, w)}}
	resp, err := NewTransport(next, WithResponseBuffer(0)).RoundTrip(get(t, context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	if read, _, _ := w.state(); read != 0 {
		t.Errorf("read %d bytes with the buffer off; want none", read)
	}
	readAll(t, resp)
}

func TestWithResponseBufferNegativePanics(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "retry: WithResponseBuffer(-1)") {
			t.Fatalf("recover() = %v; want a panic naming retry: WithResponseBuffer(-1)", r)
		}
	}()
	WithResponseBuffer(-1)
}

func TestStreamingType(t *testing.T) {
	for ct, want := range map[string]bool{
		"text/event-stream":                         true,
		"Text/Event-Stream; charset=utf-8":          true,
		"application/x-ndjson":                      true,
		"application/json-seq":                      true,
		"multipart/x-mixed-replace; boundary=frame": true,
		"application/json":                          false,
		"text/plain":                                false,
		"":                                          false,
		"garbage;;":                                 false,
	} {
		if got := streamingType(ct); got != want {
			t.Errorf("streamingType(%q) = %v; want %v", ct, got, want)
		}
	}
}

// Over a real socket: a chunked body with trailers is read inside the
// attempt, its trailers are in resp.Trailer when RoundTrip returns, and the
// connection goes back to the pool.
func TestE2EResponseBufferTrailers(t *testing.T) {
	srv := newServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "part one, ")
		w.(http.Flusher).Flush() // chunked: no Content-Length
		io.WriteString(w, "part two")
		w.Header().Set("X-Checksum", "c0ffee")
	})
	c := client(t)
	for range 2 {
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ContentLength != -1 || resp.Trailer.Get("X-Checksum") != "c0ffee" {
			t.Errorf("ContentLength %d, trailer %q before reading; want -1 and c0ffee (read inside the attempt)",
				resp.ContentLength, resp.Trailer.Get("X-Checksum"))
		}
		if got := readAll(t, resp); got != "part one, part two" {
			t.Errorf("body %q", got)
		}
	}
	if srv.conns.Load() != 1 {
		t.Errorf("%d connections for 2 calls; want 1", srv.conns.Load())
	}
}

// Outside a testing/synctest bubble the stall watches of bodies read to the
// end go back to the layer's pool and serve the next reads; a watch reused
// that way still cuts a stalled body, and a watch whose timer fired (the
// cut) is never reused. Real time, bounded: the stall is cut after half of
// a 400 ms deadline.
func TestResponseBufferPooledWatchStillCuts(t *testing.T) {
	good := func() func(*http.Request) *http.Response { return answer(200, 15, newWire(io.EOF, `{"status":"ok"}`)) }
	var resps []func(*http.Request) *http.Response
	for range 20 {
		resps = append(resps, good())
	}
	stalled := newWire(errStall, `{"st`)
	stall := func(r *http.Request) *http.Response {
		// As net/http does, the attempt's end closes its body: a watch that
		// failed to cut makes the call fail at its deadline, not hang.
		context.AfterFunc(r.Context(), func() { stalled.Close() })
		return answer(200, 15, stalled)(r)
	}
	resps = append(resps, stall, good(), good(), good())
	next := &answers{resps: resps}
	rt := NewTransport(next, WithBackoff(time.Millisecond, 5*time.Millisecond))
	call := func(timeout time.Duration) (string, time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		start := time.Now()
		resp, err := rt.RoundTrip(get(t, ctx))
		if err != nil {
			t.Fatal(err)
		}
		return readAll(t, resp), time.Since(start)
	}
	for i := range 20 {
		if got, _ := call(10 * time.Second); got != `{"status":"ok"}` {
			t.Fatalf("call %d: body %q", i, got)
		}
	}
	got, took := call(400 * time.Millisecond)
	if got != `{"status":"ok"}` {
		t.Errorf("stalled call: body %q; want the retry's", got)
	}
	if _, _, closed := stalled.state(); !closed {
		t.Error("the stalled body was not closed")
	}
	if took < 190*time.Millisecond {
		t.Errorf("stalled call answered after %v; want the cut at half of 400 ms", took)
	}
	for i := range 2 {
		if got, _ := call(10 * time.Second); got != `{"status":"ok"}` {
			t.Fatalf("call %d after the cut: body %q", i, got)
		}
	}
	if n := next.count(); n != 24 {
		t.Errorf("%d attempts; want 24 (one retry, for the stalled body)", n)
	}
}
