package base

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func closeIdle(rt http.RoundTripper) {
	if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func TestNewTransportIsNewAndTuned(t *testing.T) {
	def := http.DefaultTransport.(*http.Transport)
	beforeHeader, beforeConns := def.ResponseHeaderTimeout, def.MaxConnsPerHost
	rt := New()
	bt, ok := rt.(*baseTransport)
	if !ok {
		t.Fatalf("New() = %T; want *baseTransport", rt)
	}
	if bt.t == http.DefaultTransport {
		t.Fatal("New returned http.DefaultTransport")
	}
	tr := bt.t
	for _, c := range []struct {
		name      string
		got, want time.Duration
	}{
		{"TLSHandshakeTimeout", tr.TLSHandshakeTimeout, 5 * time.Second},
		{"ResponseHeaderTimeout", tr.ResponseHeaderTimeout, 8 * time.Second},
		{"ExpectContinueTimeout", tr.ExpectContinueTimeout, time.Second},
		{"IdleConnTimeout", tr.IdleConnTimeout, 90 * time.Second},
		{"write", bt.write, 5 * time.Second},
		{"bodyIdle", bt.bodyIdle, 8 * time.Second},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v; want %v", c.name, c.got, c.want)
		}
	}
	if tr.MaxConnsPerHost != 100 || tr.MaxIdleConnsPerHost != 100 {
		t.Errorf("pool = %d/%d; want 100/100", tr.MaxConnsPerHost, tr.MaxIdleConnsPerHost)
	}
	if tr.MaxResponseHeaderBytes != 1<<20 {
		t.Errorf("MaxResponseHeaderBytes = %d; want 1 MiB", tr.MaxResponseHeaderBytes)
	}
	if !tr.ForceAttemptHTTP2 || tr.Proxy == nil || tr.DialContext == nil {
		t.Errorf("HTTP/2 %v, proxy set %v, dialer set %v; want all true", tr.ForceAttemptHTTP2, tr.Proxy != nil, tr.DialContext != nil)
	}
	if def.ResponseHeaderTimeout != beforeHeader || def.MaxConnsPerHost != beforeConns {
		t.Fatal("http.DefaultTransport was modified")
	}
}

func TestNewTransportOptionsPanicOnNegative(t *testing.T) {
	for name, f := range map[string]func(time.Duration) Option{
		"WithConnectTimeout":  WithConnectTimeout,
		"WithWriteTimeout":    WithWriteTimeout,
		"WithBodyIdleTimeout": WithBodyIdleTimeout,
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s(-1) did not panic", name)
				}
			}()
			f(-1)
		}()
	}
}

// The wrapper exists only for the timeouts it adds: with both off, the result
// is the *http.Transport itself; with one on, only that one applies.
func TestNewTransportWrapsOnlyForItsTimeouts(t *testing.T) {
	if rt := New(WithWriteTimeout(0), WithBodyIdleTimeout(0)); reflect.TypeOf(rt) != reflect.TypeOf(&http.Transport{}) {
		t.Errorf("both timeouts off: New() = %T; want *http.Transport", rt)
	}
	for _, c := range []struct {
		opts            []Option
		write, bodyIdle time.Duration
	}{
		{[]Option{WithBodyIdleTimeout(0)}, DefaultWriteTimeout, 0},
		{[]Option{WithWriteTimeout(0)}, 0, DefaultBodyIdleTimeout},
	} {
		bt, ok := New(c.opts...).(*baseTransport)
		if !ok || bt.write != c.write || bt.bodyIdle != c.bodyIdle {
			t.Errorf("got %#v; want a *baseTransport with write %v, bodyIdle %v", bt, c.write, c.bodyIdle)
		}
	}

	// Write timeout on, body idle off: the response body is not an idleTimeoutBody.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(w, r.Body) }))
	defer srv.Close()
	rt := New(WithBodyIdleTimeout(0))
	defer closeIdle(rt)
	req, _ := http.NewRequest("POST", srv.URL, strings.NewReader("hi"))
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, ok := resp.Body.(*idleTimeoutBody); ok {
		t.Error("response body has the idle timeout although it is off")
	}
	if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "hi" {
		t.Errorf("read %q, %v; want %q", b, err, "hi")
	}
}

// A server that accepts and never answers trips the response-header timeout.
func TestResponseHeaderTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	var mu sync.Mutex
	var accepted []net.Conn
	conns.Add(1)
	go func() {
		defer conns.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, c)
			mu.Unlock()
		}
	}()
	defer func() {
		ln.Close()
		conns.Wait()
		mu.Lock()
		for _, c := range accepted {
			c.Close()
		}
		mu.Unlock()
	}()

	rt := New(WithResponseHeaderTimeout(100 * time.Millisecond))
	defer closeIdle(rt)
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/", nil)
	start := time.Now()
	resp, err := rt.RoundTrip(req)
	if resp != nil {
		t.Fatalf("got response %v with error %v", resp.Status, err)
	}
	if err == nil || !isTimeout(err) {
		t.Fatalf("err = %v; want a timeout", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("took %v; the 100ms header timeout did not apply", el)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// A server that sends headers then stalls trips the body idle timeout with
// the typed error, and the connection is torn down.
func TestBodyIdleTimeoutStall(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)

	rt := New(WithBodyIdleTimeout(100 * time.Millisecond))
	defer closeIdle(rt)
	req, _ := http.NewRequest("GET", srv.URL, nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if string(b) != "partial" {
		t.Errorf("read %q before the stall; want %q", b, "partial")
	}
	if !errors.Is(err, ErrBodyIdle) || !errors.Is(err, os.ErrDeadlineExceeded) || !isTimeout(err) {
		t.Fatalf("err = %v; want ErrBodyIdle matching os.ErrDeadlineExceeded and net.Error.Timeout", err)
	}
	// Subsequent reads keep failing the same way.
	if _, err := resp.Body.Read(make([]byte, 1)); !errors.Is(err, ErrBodyIdle) {
		t.Fatalf("second read err = %v; want ErrBodyIdle", err)
	}
}

// A body that keeps trickling, each byte sooner than the idle timeout, is read
// to the end even though the whole body takes longer than the timeout.
func TestBodyIdleTimeoutTrickleNotCut(t *testing.T) {
	const n = 8
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < n; i++ {
			w.Write([]byte{'x'})
			w.(http.Flusher).Flush()
			select {
			case <-time.After(40 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	}))
	defer srv.Close()
	rt := New(WithBodyIdleTimeout(200 * time.Millisecond))
	defer closeIdle(rt)
	req, _ := http.NewRequest("GET", srv.URL, nil)
	start := time.Now()
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(b) != n {
		t.Fatalf("read %d bytes, err %v; want %d bytes and no error", len(b), err, n)
	}
	t.Logf("trickled body of %d bytes read in %v with a 200ms idle timeout", n, time.Since(start))
}

// A caller that pauses between reads longer than the idle timeout is not cut
// off: the timer runs only while a Read waits.
func TestBodyIdleTimeoutIgnoresCallerPauses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, 100))
	}))
	defer srv.Close()
	rt := New(WithBodyIdleTimeout(20 * time.Millisecond))
	defer closeIdle(rt)
	req, _ := http.NewRequest("GET", srv.URL, nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 10)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	// Wait for the timer's would-be expiry without sleeping on the test's behalf.
	<-time.After(60 * time.Millisecond)
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatalf("read after a caller pause failed: %v", err)
	}
}

func TestCloseIdleConnectionsReachesBase(t *testing.T) {
	var newConns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			newConns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	// http.Client.CloseIdleConnections calls the transport's method if it has one.
	client := &http.Client{Transport: New()}
	get := func() {
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	get()
	get()
	if got := newConns.Load(); got != 1 {
		t.Fatalf("connections before CloseIdleConnections = %d; want 1 (reused)", got)
	}
	client.CloseIdleConnections()
	get()
	if got := newConns.Load(); got != 2 {
		t.Fatalf("connections after CloseIdleConnections = %d; want 2 (the idle one was closed)", got)
	}
	client.CloseIdleConnections()
}
