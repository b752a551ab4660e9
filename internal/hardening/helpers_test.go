package hardening_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/outboundhttp/outbound"
)

// testAPIKey is the API key every test client sends; the secrets test looks
// for it everywhere it must not be.
const testAPIKey = "sk-live-APIKEY-3f9c1e7d5b"

// testConfig is DefaultConfig with every wait short enough for a test over
// loopback: a 2 s budget, backoff from 5 ms to 20 ms, sub-second transport
// timeouts. Tracing goes to the global (no-op) providers.
func testConfig() outbound.Config {
	cfg := outbound.DefaultConfig()
	cfg.TotalBudget = 2 * time.Second
	cfg.BackoffInitial = 5 * time.Millisecond
	cfg.BackoffMax = 20 * time.Millisecond
	cfg.ConnectTimeout = 500 * time.Millisecond
	cfg.TLSHandshakeTimeout = 300 * time.Millisecond
	cfg.ResponseHeaderTimeout = time.Second
	cfg.BodyIdleTimeout = 500 * time.Millisecond
	cfg.APIKey = testAPIKey
	return cfg
}

// newClient builds the standard stack and closes its idle connections when
// the test ends, so goleak sees no leftover connection goroutines.
func newClient(t testing.TB, cfg outbound.Config, opts ...outbound.ClientOption) *http.Client {
	t.Helper()
	c, err := outbound.NewClient(cfg, opts...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// get sends a GET with ctx and returns the response and how long it took.
func get(ctx context.Context, c *http.Client, url string) (*http.Response, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	start := time.Now()
	resp, err := c.Do(req)
	return resp, time.Since(start), err
}

// rawServer is a loopback TCP server that hands each connection to handle,
// for upstreams net/http's server will not impersonate (wrong framing, 1xx
// floods, handshakes that never complete). Close closes the listener and
// every connection, and waits for the handlers.
type rawServer struct {
	ln     net.Listener
	handle func(net.Conn)
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func newRawServer(t testing.TB, handle func(net.Conn)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln, handle: handle, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.Close)
	return s
}

func (s *rawServer) URL() string { return "http://" + s.ln.Addr().String() }

func (s *rawServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
			s.handle(c)
		}()
	}
}

func (s *rawServer) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// readRequest reads one request (header and body) from br, or returns false
// when the client has gone.
func readRequest(br *bufio.Reader) (*http.Request, bool) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, false
	}
	io.Copy(io.Discard, req.Body)
	req.Body.Close()
	return req, true
}

// heapAfterGC returns the live heap after two collections.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// totalAlloc returns the cumulative bytes allocated by the process.
func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// reset closes c with SO_LINGER 0, so the peer sees a TCP RST rather than an
// orderly FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

const mib = 1 << 20
