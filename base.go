package outbound

import (
	"crypto/tls"
	"net/http"
	"net/url"
	"time"

	"github.com/outboundhttp/outbound/transport/base"
)

// The base transport moved to package transport/base, whose names read with
// the package (base.New, base.WithConnectTimeout, base.ErrBodyIdle). These
// forwarders keep code written against the root package compiling for one
// release.

// Defaults of the base transport.
//
// Deprecated: use the constants of package transport/base.
const (
	DefaultConnectTimeout         = base.DefaultConnectTimeout
	DefaultKeepAlive              = base.DefaultKeepAlive
	DefaultTLSHandshakeTimeout    = base.DefaultTLSHandshakeTimeout
	DefaultResponseHeaderTimeout  = base.DefaultResponseHeaderTimeout
	DefaultExpectContinueTimeout  = base.DefaultExpectContinueTimeout
	DefaultIdleConnTimeout        = base.DefaultIdleConnTimeout
	DefaultWriteTimeout           = base.DefaultWriteTimeout
	DefaultBodyIdleTimeout        = base.DefaultBodyIdleTimeout
	DefaultMaxConnsPerHost        = base.DefaultMaxConnsPerHost
	DefaultMaxIdleConnsPerHost    = base.DefaultMaxIdleConnsPerHost
	DefaultMaxIdleConns           = base.DefaultMaxIdleConns
	DefaultMaxResponseHeaderBytes = base.DefaultMaxResponseHeaderBytes
)

// ErrBodyIdle is base.ErrBodyIdle.
//
// Deprecated: use base.ErrBodyIdle.
var ErrBodyIdle = base.ErrBodyIdle

// ErrWriteTimeout is base.ErrWriteTimeout.
//
// Deprecated: use base.ErrWriteTimeout.
var ErrWriteTimeout = base.ErrWriteTimeout

// TransportOption is base.Option.
//
// Deprecated: use base.Option.
type TransportOption = base.Option

// NewTransport returns base.New(opts...).
//
// Deprecated: use base.New; every other NewTransport of the module wraps a
// next RoundTripper, while this one is the base of the stack.
func NewTransport(opts ...TransportOption) http.RoundTripper { return base.New(opts...) }

// WithConnectTimeout is base.WithConnectTimeout.
//
// Deprecated: use base.WithConnectTimeout.
func WithConnectTimeout(d time.Duration) TransportOption { return base.WithConnectTimeout(d) }

// WithKeepAlive is base.WithKeepAlive.
//
// Deprecated: use base.WithKeepAlive.
func WithKeepAlive(d time.Duration) TransportOption { return base.WithKeepAlive(d) }

// WithTLSHandshakeTimeout is base.WithTLSHandshakeTimeout.
//
// Deprecated: use base.WithTLSHandshakeTimeout.
func WithTLSHandshakeTimeout(d time.Duration) TransportOption { return base.WithTLSHandshakeTimeout(d) }

// WithResponseHeaderTimeout is base.WithResponseHeaderTimeout.
//
// Deprecated: use base.WithResponseHeaderTimeout.
func WithResponseHeaderTimeout(d time.Duration) TransportOption {
	return base.WithResponseHeaderTimeout(d)
}

// WithExpectContinueTimeout is base.WithExpectContinueTimeout.
//
// Deprecated: use base.WithExpectContinueTimeout.
func WithExpectContinueTimeout(d time.Duration) TransportOption {
	return base.WithExpectContinueTimeout(d)
}

// WithIdleConnTimeout is base.WithIdleConnTimeout.
//
// Deprecated: use base.WithIdleConnTimeout.
func WithIdleConnTimeout(d time.Duration) TransportOption { return base.WithIdleConnTimeout(d) }

// WithWriteTimeout is base.WithWriteTimeout.
//
// Deprecated: use base.WithWriteTimeout.
func WithWriteTimeout(d time.Duration) TransportOption { return base.WithWriteTimeout(d) }

// WithBodyIdleTimeout is base.WithBodyIdleTimeout.
//
// Deprecated: use base.WithBodyIdleTimeout.
func WithBodyIdleTimeout(d time.Duration) TransportOption { return base.WithBodyIdleTimeout(d) }

// WithMaxConnsPerHost is base.WithMaxConnsPerHost.
//
// Deprecated: use base.WithMaxConnsPerHost.
func WithMaxConnsPerHost(n int) TransportOption { return base.WithMaxConnsPerHost(n) }

// WithMaxIdleConnsPerHost is base.WithMaxIdleConnsPerHost.
//
// Deprecated: use base.WithMaxIdleConnsPerHost.
func WithMaxIdleConnsPerHost(n int) TransportOption { return base.WithMaxIdleConnsPerHost(n) }

// WithMaxIdleConns is base.WithMaxIdleConns.
//
// Deprecated: use base.WithMaxIdleConns.
func WithMaxIdleConns(n int) TransportOption { return base.WithMaxIdleConns(n) }

// WithHTTP2 is base.WithHTTP2.
//
// Deprecated: use base.WithHTTP2.
func WithHTTP2(on bool) TransportOption { return base.WithHTTP2(on) }

// WithTLSConfig is base.WithTLSConfig.
//
// Deprecated: use base.WithTLSConfig.
func WithTLSConfig(cfg *tls.Config) TransportOption { return base.WithTLSConfig(cfg) }

// WithTransportFunc is base.WithTransportFunc.
//
// Deprecated: use base.WithTransportFunc.
func WithTransportFunc(f func(*http.Transport)) TransportOption { return base.WithTransportFunc(f) }

// WithProxy is base.WithProxy.
//
// Deprecated: use base.WithProxy.
func WithProxy(proxy func(*http.Request) (*url.URL, error)) TransportOption {
	return base.WithProxy(proxy)
}
