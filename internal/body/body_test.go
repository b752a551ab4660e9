package body

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type rc struct {
	io.Reader
	closed int
}

func (r *rc) Close() error { r.closed++; return nil }

type rwc struct{ rc }

func (r *rwc) Write(p []byte) (int, error) { return len(p), nil }

func TestOnDoneRunsOnceOnEOF(t *testing.T) {
	var n int
	src := &rc{Reader: strings.NewReader("abc")}
	resp := &http.Response{Body: src}
	OnDone(resp, func() { n++ })
	if n != 0 {
		t.Fatal("done ran before the body was read")
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != "abc" {
		t.Fatalf("read %q, %v", b, err)
	}
	if n != 1 {
		t.Fatalf("done ran %d times after EOF; want 1", n)
	}
	resp.Body.Close()
	resp.Body.Close()
	if n != 1 || src.closed != 2 {
		t.Fatalf("done ran %d times, body closed %d times; want 1 and 2", n, src.closed)
	}
}

func TestOnDoneRunsOnCloseUnread(t *testing.T) {
	var n int
	resp := &http.Response{Body: &rc{Reader: strings.NewReader("abc")}}
	OnDone(resp, func() { n++ })
	resp.Body.Close()
	if n != 1 {
		t.Fatalf("done ran %d times; want 1", n)
	}
}

func TestOnDoneNilAndNoBody(t *testing.T) {
	for _, b := range []io.ReadCloser{nil, http.NoBody} {
		var n int
		resp := &http.Response{Body: b}
		OnDone(resp, func() { n++ })
		if n != 1 || resp.Body == nil {
			t.Fatalf("body %v: done ran %d times, body %v; want 1 and non-nil", b, n, resp.Body)
		}
	}
}

// fakeInMemory says whatever it is told about being in memory.
type fakeInMemory struct {
	rc
	in bool
}

func (f *fakeInMemory) InMemory() bool { return f.in }

func TestSettled(t *testing.T) {
	for _, tc := range []struct {
		name string
		body io.ReadCloser
		want bool
	}{
		{"nil", nil, true},
		{"NoBody", http.NoBody, true},
		{"NewInMemory", NewInMemory([]byte("x")), true},
		{"InMemory true", &fakeInMemory{in: true}, true},
		{"InMemory false", &fakeInMemory{in: false}, false},
		{"live", &rc{Reader: strings.NewReader("x")}, false},
	} {
		if got := Settled(tc.body); got != tc.want {
			t.Errorf("%s: Settled = %v; want %v", tc.name, got, tc.want)
		}
	}
}

// A Close racing a Read, as callers that abort reads from another goroutine
// do, is safe, and reading after Close goes on reading.
func TestNewInMemoryCloseIsNoOp(t *testing.T) {
	in := NewInMemory([]byte("ab"))
	in.Close()
	b, err := io.ReadAll(in)
	if err != nil || string(b) != "ab" {
		t.Fatalf("after Close read %q, %v; want ab, nil", b, err)
	}
}

func TestOnDoneKeepsWriter(t *testing.T) {
	resp := &http.Response{StatusCode: 101, Body: &rwc{rc{Reader: strings.NewReader("")}}}
	OnDone(resp, func() {})
	if _, ok := resp.Body.(io.Writer); !ok {
		t.Fatal("wrapper lost io.Writer of a 101 body")
	}
	resp2 := &http.Response{Body: &rc{Reader: strings.NewReader("")}}
	OnDone(resp2, func() {})
	if _, ok := resp2.Body.(io.Writer); ok {
		t.Fatal("wrapper added io.Writer to a plain body")
	}
}

// Discard drains a short body so the connection is reused.
func TestDiscardReusesConnection(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", 4096)))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := srv.Client()
	defer c.CloseIdleConnections()
	for i := 0; i < 3; i++ {
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		Discard(resp)
	}
	if got := conns.Load(); got != 1 {
		t.Fatalf("connections = %d; want 1", got)
	}
}

// Discard does not hang on a body that never ends or stalls.
func TestDiscardBounded(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("x"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c := srv.Client()
	defer c.CloseIdleConnections()
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	Discard(resp)
	if el := time.Since(start); el > 10*DrainTimeout {
		t.Fatalf("Discard took %v on a stalled body; want about %v", el, DrainTimeout)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

func TestOnDoneRunsOnReadError(t *testing.T) {
	var n int
	resp := &http.Response{Body: &rc{Reader: errReader{}}}
	OnDone(resp, func() { n++ })
	resp.Body.Read(make([]byte, 1))
	if n != 1 {
		t.Fatalf("done ran %d times after a read error; want 1", n)
	}
}

func TestKeepSmallBody(t *testing.T) {
	src := &rc{Reader: strings.NewReader("retry later")}
	resp := &http.Response{StatusCode: 503, Body: src, ContentLength: -1}
	if !Keep(resp) {
		t.Fatal("Keep refused a short body")
	}
	if src.closed != 1 {
		t.Fatalf("original closed %d times; want 1", src.closed)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "retry later" || resp.ContentLength != int64(len(b)) {
		t.Fatalf("kept body %q (length %d)", b, resp.ContentLength)
	}
}

func TestKeepRefusesLongBody(t *testing.T) {
	src := &rc{Reader: strings.NewReader(strings.Repeat("x", DrainLimit+1))}
	resp := &http.Response{Body: src}
	if Keep(resp) {
		t.Fatal("Keep kept a body longer than DrainLimit")
	}
	if src.closed == 0 {
		t.Fatal("the long body was not closed")
	}
}

func TestChecked(t *testing.T) {
	boom := errors.New("boom")
	t.Run("response and error", func(t *testing.T) {
		b := &rc{Reader: strings.NewReader("x")}
		resp, err := Checked(&http.Response{StatusCode: 200, Body: b}, boom, "layer")
		if resp != nil || err != boom {
			t.Fatalf("got (%v, %v); want (nil, boom)", resp, err)
		}
		if b.closed != 1 {
			t.Errorf("dropped body closed %d times; want 1", b.closed)
		}
	})
	t.Run("response with nil body and error", func(t *testing.T) {
		resp, err := Checked(&http.Response{StatusCode: 200}, boom, "layer")
		if resp != nil || err != boom {
			t.Fatalf("got (%v, %v); want (nil, boom)", resp, err)
		}
	})
	t.Run("error alone", func(t *testing.T) {
		if resp, err := Checked(nil, boom, "layer"); resp != nil || err != boom {
			t.Fatalf("got (%v, %v); want (nil, boom)", resp, err)
		}
	})
	t.Run("nil and nil", func(t *testing.T) {
		resp, err := Checked(nil, nil, "retry")
		if resp != nil || !errors.Is(err, ErrNilResponse) {
			t.Fatalf("got (%v, %v); want (nil, ErrNilResponse)", resp, err)
		}
		if got, want := err.Error(), "retry: next RoundTripper returned a nil response and a nil error"; got != want {
			t.Errorf("message %q; want %q", got, want)
		}
	})
	t.Run("nil body", func(t *testing.T) {
		resp, err := Checked(&http.Response{StatusCode: 204}, nil, "layer")
		if err != nil || resp == nil || resp.Body != http.NoBody {
			t.Fatalf("got (%v, %v); want a response with http.NoBody", resp, err)
		}
	})
	t.Run("good response unchanged", func(t *testing.T) {
		b := &rwc{rc{Reader: strings.NewReader("x")}}
		in := &http.Response{StatusCode: 101, Body: b}
		resp, err := Checked(in, nil, "layer")
		if err != nil || resp != in || resp.Body != io.ReadCloser(b) {
			t.Fatalf("got (%v, %v); want the response and body unchanged", resp, err)
		}
		if b.closed != 0 {
			t.Error("body of a good response closed")
		}
	})
	t.Run("no allocation on the good path", func(t *testing.T) {
		resp := &http.Response{StatusCode: 200, Body: http.NoBody}
		if n := testing.AllocsPerRun(100, func() { Checked(resp, nil, "layer") }); n != 0 {
			t.Errorf("%v allocations; want 0", n)
		}
	})
}

// countRelease counts its releases, and embeds the Tracker that wraps the
// body, as the layers' per-response values do.
type countRelease struct {
	Tracker
	n atomic.Int32
}

func (c *countRelease) Release() { c.n.Add(1) }

func TestTrackReleasesOnceOnEOFAndClose(t *testing.T) {
	src := &rc{Reader: strings.NewReader("hello")}
	resp := &http.Response{Body: src}
	r := &countRelease{}
	Track(resp, &r.Tracker, r)
	if resp.Body != &r.Tracker {
		t.Fatalf("body is %T; want the embedded Tracker", resp.Body)
	}
	if got := r.n.Load(); got != 0 {
		t.Fatalf("released %d times before any read; want 0", got)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != "hello" {
		t.Fatalf("read %q, %v; want hello, nil", b, err)
	}
	if got := r.n.Load(); got != 1 {
		t.Fatalf("released %d times at EOF; want 1", got)
	}
	resp.Body.Close()
	resp.Body.Close()
	if got := r.n.Load(); got != 1 || src.closed != 2 {
		t.Fatalf("released %d times, source closed %d times; want 1 and 2 (Close is passed on)", got, src.closed)
	}
}

func TestTrackReleasesOnCloseUnread(t *testing.T) {
	resp := &http.Response{Body: &rc{Reader: strings.NewReader("hello")}}
	r := &countRelease{}
	Track(resp, &r.Tracker, r)
	resp.Body.Close()
	if got := r.n.Load(); got != 1 {
		t.Fatalf("released %d times; want 1", got)
	}
}

func TestTrackNilAndNoBody(t *testing.T) {
	for _, b := range []io.ReadCloser{nil, http.NoBody} {
		resp := &http.Response{Body: b}
		r := &countRelease{}
		Track(resp, &r.Tracker, r)
		if r.n.Load() != 1 || resp.Body != http.NoBody {
			t.Fatalf("body %v: released %d times, body %v; want 1 and http.NoBody", b, r.n.Load(), resp.Body)
		}
	}
}

func TestTrackKeepsWriter(t *testing.T) {
	resp := &http.Response{StatusCode: 101, Body: &rwc{rc{Reader: strings.NewReader("")}}}
	r := &countRelease{}
	Track(resp, &r.Tracker, r)
	if _, ok := resp.Body.(io.Writer); !ok {
		t.Fatalf("body %T lost io.Writer", resp.Body)
	}
	resp.Body.Close()
	if got := r.n.Load(); got != 1 {
		t.Fatalf("released %d times; want 1", got)
	}
}

// A Close racing a Read that fails, as callers that abort reads from another
// goroutine do, releases once.
func TestTrackConcurrentCloseAndRead(t *testing.T) {
	for range 100 {
		resp := &http.Response{Body: &rc{Reader: strings.NewReader("")}}
		r := &countRelease{}
		Track(resp, &r.Tracker, r)
		done := make(chan struct{})
		go func() { io.ReadAll(resp.Body); close(done) }()
		resp.Body.Close()
		<-done
		if got := r.n.Load(); got != 1 {
			t.Fatalf("released %d times; want 1", got)
		}
	}
}

func TestTrackAllocatesNothingOfItsOwn(t *testing.T) {
	src := &rc{Reader: strings.NewReader("")}
	r := &countRelease{}
	resp := &http.Response{}
	if n := testing.AllocsPerRun(100, func() {
		r.Tracker = Tracker{}
		resp.Body = src
		Track(resp, &r.Tracker, r)
		resp.Body.Close()
	}); n != 0 {
		t.Fatalf("Track allocated %v times per body; want 0", n)
	}
}
