// Package base builds the base of a stack: a tuned *http.Transport with every
// timeout explicit, as the reference article asks (connect 2 s, TLS 5 s,
// response headers 8 s, write 5 s, body idle-read 8 s), a pool of 100
// connections per host kept idle as long as the burst lasts, and HTTP/2 on.
// It wraps no next RoundTripper: it is what every layer of the stack
// eventually sends through.
//
//	client := outbound.Wrap(&http.Client{Transport: base.New()},
//		retry.Middleware(),
//	)
//
// outbound.NewClient builds it from a Config; use New directly for a stack of
// your own.
package base

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of the base transport, from the reference article's client
// ("never rely on defaults") and the pool limits it sets.
const (
	DefaultConnectTimeout        = 2 * time.Second
	DefaultKeepAlive             = 30 * time.Second
	DefaultTLSHandshakeTimeout   = 5 * time.Second
	DefaultResponseHeaderTimeout = 8 * time.Second
	DefaultExpectContinueTimeout = 1 * time.Second
	DefaultIdleConnTimeout       = 90 * time.Second
	DefaultWriteTimeout          = 5 * time.Second
	DefaultBodyIdleTimeout       = 8 * time.Second
	DefaultMaxConnsPerHost       = 100
	// DefaultMaxIdleConnsPerHost equals DefaultMaxConnsPerHost: with fewer
	// idle connections kept than may be open, every dip in concurrency closes
	// the surplus and the next rise dials them again (TIME_WAIT build-up and
	// ephemeral-port exhaustion in production; the article's 20 idle against
	// 100 open measured 201 new connections for a burst of 291 requests).
	DefaultMaxIdleConnsPerHost = DefaultMaxConnsPerHost
	DefaultMaxIdleConns        = 100
	// DefaultMaxResponseHeaderBytes caps the response headers (1xx
	// informational responses included) at 1 MiB, net/http's own cap on
	// request headers (http.DefaultMaxHeaderBytes). net/http's Transport
	// otherwise allows 10 MiB per response, so an upstream sending huge
	// headers or an endless flood of 103 Early Hints could hold 1 GiB across
	// a full pool of 100 connections.
	DefaultMaxResponseHeaderBytes = 1 << 20
)

// ErrBodyIdle is returned by a response body read when no byte of the body
// arrived for the body idle timeout (see WithBodyIdleTimeout). It matches
// errors.Is(err, os.ErrDeadlineExceeded) and its Timeout method reports true,
// like the deadline errors of net.Conn.
var ErrBodyIdle error = bodyIdleError{}

type bodyIdleError struct{}

func (bodyIdleError) Error() string        { return "base: response body idle timeout" }
func (bodyIdleError) Timeout() bool        { return true }
func (bodyIdleError) Temporary() bool      { return true } // completes net.Error
func (bodyIdleError) Is(target error) bool { return target == os.ErrDeadlineExceeded }

// Option configures New.
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	connectTimeout        time.Duration
	keepAlive             time.Duration
	tlsHandshakeTimeout   time.Duration
	responseHeaderTimeout time.Duration
	expectContinueTimeout time.Duration
	idleConnTimeout       time.Duration
	writeTimeout          time.Duration
	bodyIdleTimeout       time.Duration
	maxConnsPerHost       int
	maxIdleConnsPerHost   int
	maxIdleConns          int
	http2                 bool
	tlsConfig             *tls.Config
	proxy                 func(*http.Request) (*url.URL, error)
	customize             []func(*http.Transport)
}

func defaultConfig() config {
	return config{
		connectTimeout:        DefaultConnectTimeout,
		keepAlive:             DefaultKeepAlive,
		tlsHandshakeTimeout:   DefaultTLSHandshakeTimeout,
		responseHeaderTimeout: DefaultResponseHeaderTimeout,
		expectContinueTimeout: DefaultExpectContinueTimeout,
		idleConnTimeout:       DefaultIdleConnTimeout,
		writeTimeout:          DefaultWriteTimeout,
		bodyIdleTimeout:       DefaultBodyIdleTimeout,
		maxConnsPerHost:       DefaultMaxConnsPerHost,
		maxIdleConnsPerHost:   DefaultMaxIdleConnsPerHost,
		maxIdleConns:          DefaultMaxIdleConns,
		http2:                 true,
		proxy:                 http.ProxyFromEnvironment,
	}
}

func nonNegative(name string, d time.Duration) {
	if d < 0 {
		panic(fmt.Sprintf("base: %s(%v): must not be negative", name, d))
	}
}

func positive(name string, n int) {
	if n < 1 {
		panic(fmt.Sprintf("base: %s(%d): must be at least 1", name, n))
	}
}

// WithConnectTimeout bounds the TCP connect (default 2 s). Zero means no bound.
func WithConnectTimeout(d time.Duration) Option {
	nonNegative("WithConnectTimeout", d)
	return optionFunc(func(c *config) { c.connectTimeout = d })
}

// WithKeepAlive sets the TCP keep-alive probe interval (default 30 s).
func WithKeepAlive(d time.Duration) Option {
	nonNegative("WithKeepAlive", d)
	return optionFunc(func(c *config) { c.keepAlive = d })
}

// WithTLSHandshakeTimeout bounds the TLS handshake (default 5 s).
func WithTLSHandshakeTimeout(d time.Duration) Option {
	nonNegative("WithTLSHandshakeTimeout", d)
	return optionFunc(func(c *config) { c.tlsHandshakeTimeout = d })
}

// WithResponseHeaderTimeout bounds the wait for the response headers after the
// request was written (default 8 s, the article's read timeout).
func WithResponseHeaderTimeout(d time.Duration) Option {
	nonNegative("WithResponseHeaderTimeout", d)
	return optionFunc(func(c *config) { c.responseHeaderTimeout = d })
}

// WithExpectContinueTimeout bounds the wait for "100 Continue" when the request
// has "Expect: 100-continue" (default 1 s).
func WithExpectContinueTimeout(d time.Duration) Option {
	nonNegative("WithExpectContinueTimeout", d)
	return optionFunc(func(c *config) { c.expectContinueTimeout = d })
}

// WithIdleConnTimeout closes pooled connections idle for longer than d (default 90 s).
func WithIdleConnTimeout(d time.Duration) Option {
	nonNegative("WithIdleConnTimeout", d)
	return optionFunc(func(c *config) { c.idleConnTimeout = d })
}

// WithWriteTimeout fails an attempt with ErrWriteTimeout when its request
// body makes no progress for d (default 5 s, the article's write timeout):
// the transport has not asked for more of the body for d, because the
// upstream stopped reading and the socket write blocks. net/http has no such
// bound (its response header timeout starts once the request is written), so
// without it a stalled upload waits for the caller's context. Like
// WithBodyIdleTimeout it bounds each wait, not the whole upload: a large body
// that keeps being consumed is never cut off, and time the caller's own
// reader takes to produce the body is not counted. The timer stops once the
// body is sent or the response headers arrive. Requests without a body pay
// nothing for it. Zero disables it.
func WithWriteTimeout(d time.Duration) Option {
	nonNegative("WithWriteTimeout", d)
	return optionFunc(func(c *config) { c.writeTimeout = d })
}

// WithBodyIdleTimeout fails a response body read with ErrBodyIdle when no byte
// arrives for d while the caller is reading (default 8 s), and tears the
// connection down. It bounds each wait, not the whole body: a large body that
// keeps arriving is never cut off, as with httpx's read timeout. Zero disables it.
func WithBodyIdleTimeout(d time.Duration) Option {
	nonNegative("WithBodyIdleTimeout", d)
	return optionFunc(func(c *config) { c.bodyIdleTimeout = d })
}

// WithMaxConnsPerHost limits connections per host, dialing, active and idle
// (default 100).
func WithMaxConnsPerHost(n int) Option {
	positive("WithMaxConnsPerHost", n)
	return optionFunc(func(c *config) { c.maxConnsPerHost = n })
}

// WithMaxIdleConnsPerHost limits the idle connections kept per host (default 100,
// as many as may be open).
func WithMaxIdleConnsPerHost(n int) Option {
	positive("WithMaxIdleConnsPerHost", n)
	return optionFunc(func(c *config) { c.maxIdleConnsPerHost = n })
}

// WithMaxIdleConns limits the idle connections kept across all hosts (default 100).
func WithMaxIdleConns(n int) Option {
	positive("WithMaxIdleConns", n)
	return optionFunc(func(c *config) { c.maxIdleConns = n })
}

// WithHTTP2 turns HTTP/2 on (the default) or off.
func WithHTTP2(on bool) Option {
	return optionFunc(func(c *config) { c.http2 = on })
}

// WithTLSConfig sets the TLS client configuration (cloned; default nil, which
// means the system roots and Go's defaults).
func WithTLSConfig(cfg *tls.Config) Option {
	return optionFunc(func(c *config) {
		if cfg != nil {
			c.tlsConfig = cfg.Clone()
		}
	})
}

// WithProxy sets the proxy function (default http.ProxyFromEnvironment). A nil
// function means no proxy.
func WithProxy(proxy func(*http.Request) (*url.URL, error)) Option {
	return optionFunc(func(c *config) { c.proxy = proxy })
}

// WithTransportFunc calls f on the *http.Transport after every other option
// has been applied, for settings this package does not name.
func WithTransportFunc(f func(*http.Transport)) Option {
	return optionFunc(func(c *config) {
		if f != nil {
			c.customize = append(c.customize, f)
		}
	})
}

// New returns a new, tuned base RoundTripper, the innermost
// layer of a stack (it wraps no next): an *http.Transport of
// its own (http.DefaultTransport is never modified) with every timeout
// explicit, as the reference article asks — connect 2 s with TCP keep-alive,
// TLS handshake 5 s, response headers 8 s, expect-continue 1 s, idle
// connections 90 s, at most 100 connections per host and as many idle, HTTP/2
// on, proxy from the environment, response headers of at most 1 MiB — plus
// two timeouts net/http lacks: a request body write timeout of 5 s
// (WithWriteTimeout) and a response body idle-read timeout of 8 s
// (WithBodyIdleTimeout). WithTransportFunc changes any of the
// *http.Transport's fields. With both of those timeouts off the result is the
// *http.Transport itself.
//
// The result is safe for concurrent use and forwards CloseIdleConnections.
// Per-request resources (the write timer's context) are released when the
// caller closes the response body or reads it to the end, or at once when
// RoundTrip returns an error.
func New(opts ...Option) http.RoundTripper {
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	dialer := &net.Dialer{Timeout: cfg.connectTimeout, KeepAlive: cfg.keepAlive}
	t := &http.Transport{
		Proxy:                  cfg.proxy,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        cfg.tlsConfig,
		TLSHandshakeTimeout:    cfg.tlsHandshakeTimeout,
		ResponseHeaderTimeout:  cfg.responseHeaderTimeout,
		ExpectContinueTimeout:  cfg.expectContinueTimeout,
		IdleConnTimeout:        cfg.idleConnTimeout,
		MaxConnsPerHost:        cfg.maxConnsPerHost,
		MaxIdleConnsPerHost:    cfg.maxIdleConnsPerHost,
		MaxIdleConns:           cfg.maxIdleConns,
		MaxResponseHeaderBytes: DefaultMaxResponseHeaderBytes,
		// A custom DialContext or TLS config turns net/http's automatic HTTP/2
		// off; ask for it explicitly.
		ForceAttemptHTTP2: cfg.http2,
	}
	if !cfg.http2 {
		// A non-nil, empty map disables HTTP/2 (net/http package docs).
		t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	for _, f := range cfg.customize {
		f(t)
	}
	if cfg.writeTimeout <= 0 && cfg.bodyIdleTimeout <= 0 {
		return t
	}
	return &baseTransport{t: t, write: cfg.writeTimeout, bodyIdle: cfg.bodyIdleTimeout}
}

// baseTransport adds the write timeout and the body idle timeout to an
// *http.Transport; a zero duration turns either off.
type baseTransport struct {
	t        *http.Transport
	write    time.Duration
	bodyIdle time.Duration
}

func (b *baseTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	w, req := b.watchWrite(req)
	resp, err := b.t.RoundTrip(req)
	if w != nil {
		// Releases the watch's context on an error, or when the body is done.
		resp, err = w.finish(req.Context(), resp, err)
	}
	if err != nil || resp == nil || b.bodyIdle <= 0 {
		return resp, err
	}
	// 101 bodies are the raw connection (io.ReadWriteCloser); leave them alone.
	if resp.StatusCode != http.StatusSwitchingProtocols && resp.Body != nil && resp.Body != http.NoBody {
		resp.Body = &idleTimeoutBody{rc: resp.Body, timeout: b.bodyIdle}
	}
	return resp, nil
}

// watchWrite returns the request to send and its write watch: req itself
// and nil, without allocating, when the write timeout is off or req has no body.
func (b *baseTransport) watchWrite(req *http.Request) (*writeWatch, *http.Request) {
	if b.write <= 0 || req.Body == nil || req.Body == http.NoBody {
		return nil, req
	}
	return watchWrite(req, b.write)
}

// CloseIdleConnections closes the idle connections of the underlying transport.
func (b *baseTransport) CloseIdleConnections() { b.t.CloseIdleConnections() }

// idleTimeoutBody fails a Read that waits longer than timeout for data. The
// timer runs only while a Read is in progress, so a caller that pauses between
// reads is not penalised; when it fires, the body is closed, which unblocks
// the Read and makes net/http tear the connection down instead of reusing it.
type idleTimeoutBody struct {
	rc       io.ReadCloser
	timeout  time.Duration
	mu       sync.Mutex // guards timer creation
	timer    *time.Timer
	timedOut atomic.Bool
}

func (b *idleTimeoutBody) Read(p []byte) (int, error) {
	if b.timedOut.Load() {
		return 0, ErrBodyIdle
	}
	b.mu.Lock()
	if b.timer == nil {
		b.timer = time.AfterFunc(b.timeout, b.expire)
	} else {
		b.timer.Reset(b.timeout)
	}
	t := b.timer
	b.mu.Unlock()
	n, err := b.rc.Read(p)
	t.Stop()
	if b.timedOut.Load() {
		return n, ErrBodyIdle
	}
	return n, err
}

func (b *idleTimeoutBody) expire() {
	b.timedOut.Store(true)
	b.rc.Close()
}

func (b *idleTimeoutBody) Close() error {
	b.mu.Lock()
	if b.timer != nil {
		b.timer.Stop()
	}
	b.mu.Unlock()
	return b.rc.Close()
}
