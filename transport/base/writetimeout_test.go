package base

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// endless yields zeros forever: an upload larger than any socket buffer.
type endless struct{}

func (endless) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// pacedReader yields chunks of size bytes, waiting every before each one;
// pauseAt > 0 adds one wait of pause before chunk number pauseAt.
type pacedReader struct {
	chunks, size int
	every        time.Duration
	pauseAt      int
	pause        time.Duration
	n            int
}

func (r *pacedReader) Read(p []byte) (int, error) {
	if r.n == r.chunks {
		return 0, io.EOF
	}
	wait := r.every
	if r.pauseAt > 0 && r.n == r.pauseAt {
		wait = r.pause
	}
	if wait > 0 {
		<-time.After(wait)
	}
	r.n++
	n := min(len(p), r.size)
	clear(p[:n])
	return n, nil
}

// startServer starts h over HTTP/1.1, or over HTTP/2 with TLS, and returns the
// options a transport needs to reach it. The server is closed at cleanup.
func startServer(t *testing.T, h2 bool, h http.HandlerFunc) (*httptest.Server, []Option) {
	return startServerWith(t, h2, h, nil)
}

func startServerWith(t *testing.T, h2 bool, h http.HandlerFunc, configure func(*httptest.Server)) (*httptest.Server, []Option) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	if configure != nil {
		configure(srv)
	}
	t.Cleanup(srv.Close)
	if !h2 {
		srv.Start()
		return srv, nil
	}
	srv.EnableHTTP2 = true
	srv.StartTLS()
	return srv, []Option{WithTLSConfig(srv.Client().Transport.(*http.Transport).TLSClientConfig)}
}

// sentRequest returns an option that records the request the *http.Transport
// was given (its Proxy function sees it), and a function that returns it.
func sentRequest() (Option, func() *http.Request) {
	var seen atomic.Pointer[http.Request]
	opt := WithProxy(func(r *http.Request) (*url.URL, error) {
		seen.Store(r)
		return nil, nil
	})
	return opt, seen.Load
}

func forEachProto(t *testing.T, f func(t *testing.T, h2 bool)) {
	for _, h2 := range []bool{false, true} {
		name := "HTTP/1.1"
		if h2 {
			name = "HTTP/2"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, h2)
		})
	}
}

// An upstream that reads a few bytes and then stops reading, without
// answering, fails the attempt with the write timeout once the socket (or the
// HTTP/2 flow-control window) is full; the response header timeout would
// never start, since the request is never fully written.
func TestWriteTimeoutStalledUpload(t *testing.T) {
	forEachProto(t, func(t *testing.T, h2 bool) {
		release := make(chan struct{})
		srv, opts := startServer(t, h2, func(w http.ResponseWriter, r *http.Request) {
			io.ReadFull(r.Body, make([]byte, 16))
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		t.Cleanup(func() { close(release) }) // before srv.Close, which waits for the handler
		record, sent := sentRequest()
		const d = 200 * time.Millisecond
		rt := New(append(opts, record, WithWriteTimeout(d))...)
		t.Cleanup(func() { closeIdle(rt) })

		// A bound far above the write timeout, so a failure cannot hang the test.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "PUT", srv.URL, endless{})
		start := time.Now()
		resp, err := rt.RoundTrip(req)
		el := time.Since(start)
		if resp != nil {
			resp.Body.Close()
			t.Fatalf("got response %s; want the write timeout", resp.Status)
		}
		if !errors.Is(err, ErrWriteTimeout) || !errors.Is(err, os.ErrDeadlineExceeded) || !isTimeout(err) {
			t.Fatalf("err = %v; want ErrWriteTimeout matching os.ErrDeadlineExceeded and net.Error.Timeout", err)
		}
		if errors.Is(err, context.Canceled) {
			t.Errorf("err = %v matches context.Canceled; a retry layer would take it for the caller giving up", err)
		}
		if want := "no progress for 200ms"; !strings.Contains(err.Error(), want) {
			t.Errorf("err = %q; want it to contain %q", err, want)
		}
		t.Logf("failed after %v: %v", el, err)
		if el < d || el > 2*time.Second {
			t.Errorf("failed after %v; want soon after the %v write timeout", el, d)
		}
		// Released at once on an error return.
		if sctx := sent().Context(); sctx.Err() == nil || !errors.Is(context.Cause(sctx), ErrWriteTimeout) {
			t.Errorf("attempt context: err %v, cause %v; want canceled by the write timeout", sctx.Err(), context.Cause(sctx))
		}
		if ctx.Err() != nil {
			t.Errorf("caller's context ended (%v); the write timeout must cancel only the attempt's", ctx.Err())
		}
	})
}

// smallBuffers shrinks the socket buffers on both ends and the server's
// HTTP/2 receive windows to 64 KiB, so an upload blocks as soon as the
// upstream falls behind and resumes as soon as it reads a little. With the
// kernel's autotuned loopback buffers (megabytes) and HTTP/2's default 1 MiB
// windows, a blocked write waits until about half a buffer or window has been
// drained — as across real networks, which is why the default write timeout
// is seconds, not milliseconds.
func smallBuffers() (func(*httptest.Server), Option) {
	const size = 64 << 10
	server := func(srv *httptest.Server) {
		srv.Config.HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerConnection: size, MaxReceiveBufferPerStream: size}
		srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
			if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
				c = tc.NetConn()
			}
			if s == http.StateNew {
				c.(*net.TCPConn).SetReadBuffer(size)
			}
		}
	}
	client := WithTransportFunc(func(tr *http.Transport) {
		dial := tr.DialContext
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err == nil {
				c.(*net.TCPConn).SetWriteBuffer(size)
			}
			return c, err
		}
	})
	return server, client
}

// Uploads that keep making progress are never cut off, however long the
// whole upload takes: one paced by the caller's reader (including a pause
// inside Read longer than the timeout, which is not the upstream's fault),
// and one paced by a slow upstream that keeps the write blocked for short
// spells.
func TestWriteTimeoutProgressNotCut(t *testing.T) {
	const d = 200 * time.Millisecond
	cases := []struct {
		name      string
		body      func() io.Reader
		readChunk int
		readEvery time.Duration
		small     bool
	}{
		{"caller paces", func() io.Reader {
			return &pacedReader{chunks: 40, size: 1 << 10, every: 20 * time.Millisecond, pauseAt: 20, pause: 2 * d}
		}, 32 << 10, 0, false},
		{"upstream paces", func() io.Reader {
			return io.LimitReader(endless{}, 2<<20)
		}, 32 << 10, 10 * time.Millisecond, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			forEachProto(t, func(t *testing.T, h2 bool) {
				var configure func(*httptest.Server)
				var opts []Option
				if c.small {
					var client Option
					configure, client = smallBuffers()
					opts = append(opts, client)
				}
				srv, srvOpts := startServerWith(t, h2, func(w http.ResponseWriter, r *http.Request) {
					var n int64
					buf := make([]byte, c.readChunk)
					for {
						m, err := io.ReadFull(r.Body, buf)
						n += int64(m)
						if err != nil {
							break
						}
						if c.readEvery > 0 {
							<-time.After(c.readEvery)
						}
					}
					fmt.Fprint(w, n)
				}, configure)
				rt := New(append(append(opts, srvOpts...), WithWriteTimeout(d))...)
				t.Cleanup(func() { closeIdle(rt) })
				req, _ := http.NewRequest("PUT", srv.URL, c.body())
				start := time.Now()
				resp, err := rt.RoundTrip(req)
				if err != nil {
					t.Fatalf("RoundTrip after %v: %v", time.Since(start), err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.ProtoMajor != map[bool]int{false: 1, true: 2}[h2] {
					t.Fatalf("read %q, err %v, proto %s", b, err, resp.Proto)
				}
				t.Logf("%s bytes uploaded in %v with a %v write timeout", b, time.Since(start), d)
			})
		})
	}
}

// The attempt's context outlives RoundTrip: the caller reads a response that
// streams for longer than the write timeout, and only then, on EOF or Close,
// is the context released.
func TestWriteTimeoutReleasedWhenBodyDone(t *testing.T) {
	for _, close := range []bool{false, true} {
		name := map[bool]string{false: "EOF", true: "Close"}[close]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			forEachProto(t, func(t *testing.T, h2 bool) {
				srv, opts := startServer(t, h2, func(w http.ResponseWriter, r *http.Request) {
					io.Copy(io.Discard, r.Body)
					for i := 0; i < 5; i++ {
						w.Write([]byte("x"))
						w.(http.Flusher).Flush()
						select {
						case <-time.After(60 * time.Millisecond):
						case <-r.Context().Done():
							return
						}
					}
				})
				record, sent := sentRequest()
				rt := New(append(opts, record, WithWriteTimeout(100*time.Millisecond))...)
				t.Cleanup(func() { closeIdle(rt) })
				req, _ := http.NewRequest("POST", srv.URL, strings.NewReader("hello"))
				resp, err := rt.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				actx := sent().Context()
				if close {
					resp.Body.Close()
				} else {
					b, err := io.ReadAll(resp.Body)
					if err != nil || string(b) != "xxxxx" {
						t.Fatalf("read %q, %v; want %q: the body outlived the write timeout's context", b, err, "xxxxx")
					}
				}
				if actx.Err() == nil {
					t.Fatalf("attempt context still live after %s; want it released", name)
				}
				if errors.Is(context.Cause(actx), ErrWriteTimeout) {
					t.Fatalf("attempt context canceled by the write timeout; want a plain release")
				}
				resp.Body.Close()
			})
		})
	}
}

// The caller's request is never modified; the transport gets a clone with a
// watched body and a context of its own.
func TestWriteTimeoutLeavesCallerRequest(t *testing.T) {
	srv, _ := startServer(t, false, func(w http.ResponseWriter, r *http.Request) { io.Copy(w, r.Body) })
	record, sent := sentRequest()
	rt := New(record, WithWriteTimeout(time.Second))
	defer closeIdle(rt)
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, 1)
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL, bytes.NewReader([]byte("hello")))
	body, getBody := req.Body, reflect.ValueOf(req.GetBody).Pointer()
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello" {
		t.Errorf("echoed %q; want %q", b, "hello")
	}
	if req.Body != body || reflect.ValueOf(req.GetBody).Pointer() != getBody || req.Context() != ctx {
		t.Error("the caller's request was modified (Body, GetBody or context)")
	}
	if s := sent(); s == req || s.Context() == ctx || s.Context().Value(key{}) != 1 {
		t.Error("the transport did not get a clone whose context derives from the caller's")
	}
}

// Requests without a body pay nothing: no clone, no wrapper, no context, no allocation.
func TestWriteTimeoutNoBody(t *testing.T) {
	srv, _ := startServer(t, false, func(w http.ResponseWriter, r *http.Request) {})
	record, sent := sentRequest()
	rt := New(record, WithWriteTimeout(time.Second))
	defer closeIdle(rt)
	for _, b := range []io.Reader{nil, http.NoBody} {
		req, _ := http.NewRequest("POST", srv.URL, b)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if s := sent(); s != req {
			t.Errorf("body %T: the transport got %p; want the caller's request %p itself", b, s, req)
		}
		bt := rt.(*baseTransport)
		if allocs := testing.AllocsPerRun(100, func() {
			if w, r := bt.watchWrite(req); w != nil || r != req {
				t.Fatal("watched a request without a body")
			}
		}); allocs != 0 {
			t.Errorf("body %T: %v allocations; want 0", b, allocs)
		}
	}
}

// An error from the caller's body reader surfaces as that error, not as a timeout.
func TestWriteTimeoutBodyReadError(t *testing.T) {
	errBoom := errors.New("boom")
	forEachProto(t, func(t *testing.T, h2 bool) {
		srv, opts := startServer(t, h2, func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) })
		rt := New(append(opts, WithWriteTimeout(100*time.Millisecond))...)
		t.Cleanup(func() { closeIdle(rt) })
		req, _ := http.NewRequest("PUT", srv.URL, io.MultiReader(strings.NewReader("partial"), iotestErrReader{errBoom}))
		resp, err := rt.RoundTrip(req)
		if resp != nil {
			resp.Body.Close()
			t.Fatalf("got response %s; want the body's error", resp.Status)
		}
		if !errors.Is(err, errBoom) || errors.Is(err, ErrWriteTimeout) {
			t.Fatalf("err = %v; want the body's own error", err)
		}
	})
}

type iotestErrReader struct{ err error }

func (r iotestErrReader) Read([]byte) (int, error) { return 0, r.err }

// When net/http resends on a new connection by itself (a reused connection
// closed by the server after reading the request), it rewinds the body
// through GetBody; the rewound body is watched as well.
func TestWriteTimeoutRewoundBody(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	defer func() {
		ln.Close()
		close(release)
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func(first bool) {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				if first {
					// Answer the first request, keep the connection alive, then
					// read the second request whole and hang up without answering.
					for n := 0; n < 2; n++ {
						r, err := http.ReadRequest(br)
						if err != nil {
							return
						}
						io.Copy(io.Discard, r.Body)
						if n == 0 {
							io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
						}
					}
					return
				}
				// The resend: read a little, then stop reading.
				if r, err := http.ReadRequest(br); err == nil {
					io.ReadFull(r.Body, make([]byte, 16))
				}
				<-release
			}(i == 0)
		}
	}()

	const d = 200 * time.Millisecond
	rt := New(WithWriteTimeout(d))
	defer closeIdle(rt)
	url := "http://" + ln.Addr().String() + "/"
	resp, err := rt.RoundTrip(httptestGet(t, url))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	const size = 32 << 20 // more than the loopback socket buffers hold
	var rewinds atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", url, io.LimitReader(endless{}, size))
	req.ContentLength = size
	req.Header.Set("Idempotency-Key", "k") // lets net/http resend a POST
	req.GetBody = func() (io.ReadCloser, error) {
		rewinds.Add(1)
		return io.NopCloser(io.LimitReader(endless{}, size)), nil
	}
	start := time.Now()
	resp, err = rt.RoundTrip(req)
	if resp != nil {
		resp.Body.Close()
		t.Fatalf("got response %s; want the write timeout", resp.Status)
	}
	if !errors.Is(err, ErrWriteTimeout) {
		t.Fatalf("err = %v after %v; want ErrWriteTimeout on the resent body", err, time.Since(start))
	}
	if n := rewinds.Load(); n != 1 {
		t.Fatalf("GetBody called %d times; want 1 (net/http's own resend)", n)
	}
}

func httptestGet(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// A watch that fires while the transport is inside the body's Read does not
// cancel; the time the caller's reader takes is not the upstream's.
func TestWriteWatchIgnoresTimeInRead(t *testing.T) {
	req, _ := http.NewRequest("PUT", "http://example.invalid/", bytes.NewReader(make([]byte, 8)))
	w, clone := watchWrite(req, time.Millisecond)
	defer w.finish(clone.Context(), nil, errors.New("done"))
	w.mu.Lock()
	w.arm()
	w.armed = false // as if the transport had called Read again
	w.mu.Unlock()
	w.expire()
	if err := clone.Context().Err(); err != nil {
		t.Fatalf("canceled while the transport was reading the body: %v", context.Cause(clone.Context()))
	}
	// The rewound body is watched too.
	rc, err := clone.GetBody()
	if err != nil {
		t.Fatal(err)
	}
	if wb, ok := rc.(*watchedBody); !ok || wb.w != w {
		t.Fatalf("GetBody returned %T; want a body watched by the same watch", rc)
	}
	rc.Close()
}

// Each Read of a watched body asks for at most maxWatchedRead bytes, so the
// HTTP/2 transport's 512 KiB reads cannot hide a slow but steady upstream.
func TestWatchedBodyCapsRead(t *testing.T) {
	req, _ := http.NewRequest("PUT", "http://example.invalid/", io.LimitReader(endless{}, 1<<20))
	w, clone := watchWrite(req, time.Minute)
	defer w.finish(clone.Context(), nil, errors.New("done"))
	if n, err := clone.Body.Read(make([]byte, 512<<10)); n != maxWatchedRead || err != nil {
		t.Fatalf("Read(512 KiB) = %d, %v; want %d, nil", n, err, maxWatchedRead)
	}
}

// When the timer fires as the response headers arrive, the timer wins: the
// attempt's context is canceled, so the response is closed and the write
// timeout returned — never a response whose body cannot be read. This holds
// also when finish runs between expire marking the watch fired and canceling.
func TestWriteWatchTimerWinsOverHeaders(t *testing.T) {
	req, _ := http.NewRequest("PUT", "http://example.invalid/", strings.NewReader("x"))
	w, clone := watchWrite(req, time.Second)
	w.mu.Lock()
	w.stopped, w.fired = true, true // expire's state before its cancel
	w.mu.Unlock()
	var closed atomic.Bool
	resp := &http.Response{StatusCode: 200, Body: closeFunc(func() { closed.Store(true) })}
	got, err := w.finish(clone.Context(), resp, nil)
	if got != nil || !errors.Is(err, ErrWriteTimeout) {
		t.Fatalf("finish = %v, %v; want nil, ErrWriteTimeout", got, err)
	}
	if !closed.Load() {
		t.Error("the raced response was not closed")
	}
	if !errors.Is(context.Cause(clone.Context()), ErrWriteTimeout) {
		t.Errorf("attempt context cause = %v; want ErrWriteTimeout", context.Cause(clone.Context()))
	}
}

type closeFunc func()

func (closeFunc) Read([]byte) (int, error) { return 0, io.EOF }
func (f closeFunc) Close() error           { f(); return nil }

// A 101 Switching Protocols response to a request with a body keeps its
// writable body (net/http's contract) through the watch's release wrapper.
func TestWriteTimeoutKeepsSwitchingProtocolsWriter(t *testing.T) {
	srv, _ := startServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		io.Copy(c, brw) // echo until the client closes
	})
	rt := New(WithWriteTimeout(time.Second))
	defer closeIdle(rt)
	req, _ := http.NewRequest("POST", srv.URL, strings.NewReader("hello"))
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if resp.StatusCode != http.StatusSwitchingProtocols || !ok {
		t.Fatalf("status %d, body %T; want 101 with an io.ReadWriteCloser body", resp.StatusCode, resp.Body)
	}
	if _, err := io.WriteString(rw, "ping"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(rw, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q, %v; want %q", buf, err, "ping")
	}
}
