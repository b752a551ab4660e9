// Package header sets static request headers (such as User-Agent) and an
// "Authorization: Bearer" token on outbound requests, without ever overwriting
// a header the caller set.
//
//	client := outbound.Wrap(http.DefaultClient,
//		header.Middleware(
//			header.WithHeader("User-Agent", "billing/1.4"),
//			header.WithTokenSource(tokens.Token), // called per attempt
//		))
//
// Credentials are added only for the host of the caller's original request:
// when a redirect leads to another host, the Authorization header is not sent
// there, as net/http itself does for headers the caller set (RFC 9110 §15.4
// leaves it to the client; Go's Client strips credentials on cross-host
// redirects and so must a transport that adds them).
package header

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"sync/atomic"

	"golang.org/x/net/http/httpguts"

	"github.com/outboundhttp/outbound/internal/body"
	"github.com/outboundhttp/outbound/internal/idle"
	"github.com/outboundhttp/outbound/internal/reqheader"
)

// ErrToken is matched by the error returned when the token source fails.
// The error never contains a token.
var ErrToken = errors.New("header: token source failed")

// Option configures a Transport.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	static []field
	token  func(context.Context) (string, error)
}

type field struct{ name, value string }

// WithHeader sets name: value on every request that does not already carry
// name. It panics if name or value is not a valid header field (RFC 9110 §5.5).
func WithHeader(name, value string) Option {
	if !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(value) {
		panic(fmt.Sprintf("header: WithHeader(%q, ...): invalid header field", name))
	}
	name = textproto.CanonicalMIMEHeaderKey(name)
	return optionFunc(func(c *config) { c.static = append(c.static, field{name, value}) })
}

// WithBearerToken sends "Authorization: Bearer token" on every request that
// has no Authorization header. It panics if token holds bytes a header value
// cannot carry; the panic message does not include the token.
func WithBearerToken(token string) Option {
	if token == "" || !httpguts.ValidHeaderFieldValue(token) || strings.ContainsAny(token, " \t") {
		panic("header: WithBearerToken: token is empty or not a valid header value")
	}
	return WithTokenSource(func(context.Context) (string, error) { return token, nil })
}

// WithTokenSource calls source for every attempt of every request that has no
// Authorization header, and sends "Authorization: Bearer <token>". Because it
// is called per attempt (place the header layer inside the retry layer, as
// outbound.NewClient does), a refreshed token is used on retries. An error
// from source fails the request with an error matching ErrToken and wrapping
// source's error; source must not put the token in its errors.
func WithTokenSource(source func(ctx context.Context) (string, error)) Option {
	return optionFunc(func(c *config) { c.token = source })
}

// Transport adds headers to requests. It is safe for concurrent use; the
// caller's request is never modified (a copy with its own header map carries
// the headers).
type Transport struct {
	next   http.RoundTripper
	static []reqheader.Field // values built once, shared read-only by every copy
	token  func(context.Context) (string, error)
	auth   atomic.Pointer[authCache]
}

var _ http.RoundTripper = (*Transport)(nil)

// NewTransport returns a Transport sending requests to next (nil means
// http.DefaultTransport).
func NewTransport(next http.RoundTripper, opts ...Option) *Transport {
	if next == nil {
		next = http.DefaultTransport
	}
	var c config
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	t := &Transport{next: next, token: c.token}
	for _, f := range c.static {
		t.static = append(t.static, reqheader.Field{Key: f.name, Values: []string{f.value}})
	}
	return t
}

// Middleware returns NewTransport as a middleware for outbound.Chain.
func Middleware(opts ...Option) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper { return NewTransport(next, opts...) }
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	missing := 0
	for _, f := range t.static {
		if _, ok := req.Header[f.Key]; !ok {
			missing++
		}
	}
	var auth []string
	if t.token != nil && req.Header.Get("Authorization") == "" && sameHostAsOriginal(req) {
		tok, err := t.token(req.Context())
		if err != nil {
			body.CloseRequest(req)
			return nil, fmt.Errorf("%w: %w", ErrToken, err)
		}
		if tok == "" || !httpguts.ValidHeaderFieldValue(tok) {
			body.CloseRequest(req)
			return nil, fmt.Errorf("%w: token is empty or not a valid header value", ErrToken)
		}
		auth = t.authValues(tok)
	}
	if missing == 0 && auth == nil {
		return t.send(req)
	}
	// One shallow copy with a new header map (reqheader.Copy); the values
	// of the static fields were built once, in NewTransport.
	var buf [4]reqheader.Field
	fs := buf[:0]
	for _, f := range t.static {
		// Checked against the caller's header, not the copy being filled.
		if _, ok := req.Header[f.Key]; !ok {
			fs = append(fs, f)
		}
	}
	if auth != nil {
		fs = append(fs, reqheader.Field{Key: "Authorization", Values: auth})
	}
	return t.send(reqheader.Copy(req, req.Context(), fs...))
}

// authValues returns the Authorization value of token tok, reusing the one
// built for the previous call when the token is the same (a static key, or
// a source that refreshes now and then), so an unchanged token costs no
// allocation per attempt.
func (t *Transport) authValues(tok string) []string {
	if c := t.auth.Load(); c != nil && c.token == tok {
		return c.values
	}
	c := &authCache{token: tok, values: []string{"Bearer " + tok}}
	t.auth.Store(c)
	return c.values
}

type authCache struct {
	token  string
	values []string // read-only
}

func (t *Transport) send(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	return body.Checked(resp, err, "header")
}

// CloseIdleConnections forwards to the next RoundTripper when it has the method.
func (t *Transport) CloseIdleConnections() { idle.Close(t.next) }

// PresetHeaders returns a copy of the static fields (WithHeader) the
// Transport sets on every request that lacks them. A request-ID layer above
// (transport/requestid), with only layers between that pass headers on
// unchanged, sets them on the copy of the request it makes anyway; this
// Transport then finds them present and sends the request on without a copy
// of its own (internal/reqheader.Preset). Credentials are never preset: they
// are added per attempt, for the original host only. Callers need not use
// the method.
func (t *Transport) PresetHeaders() http.Header {
	h := make(http.Header, len(t.static))
	for _, f := range t.static {
		// With a token source, the token replaces a static Authorization
		// (RoundTrip); preset, the static one would be found present and
		// keep the token out.
		if t.token != nil && f.Key == "Authorization" {
			continue
		}
		h[f.Key] = slices.Clone(f.Values)
	}
	if len(h) == 0 {
		return nil
	}
	return h
}

// sameHostAsOriginal reports whether req goes to the host of the request that
// started its redirect chain (req.Response is set on redirected requests).
func sameHostAsOriginal(req *http.Request) bool {
	orig := req
	for i := 0; orig.Response != nil && orig.Response.Request != nil && i < 100; i++ {
		orig = orig.Response.Request
	}
	if orig == req {
		return true
	}
	return strings.EqualFold(hostOf(orig), hostOf(req))
}

func hostOf(r *http.Request) string {
	if r.URL != nil && r.URL.Host != "" {
		return r.URL.Host
	}
	return r.Host
}
