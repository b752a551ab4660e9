package outbound

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/internal/pushback"
)

// maxSnippet bounds the body excerpt kept in a StatusError; the reference
// article keeps 500 characters.
const maxSnippet = 512

// StatusError is the error CheckResponse returns for a response whose status
// is not 2xx or 3xx. Its message is one line and carries no secret: the URL
// has its userinfo and query removed.
type StatusError struct {
	StatusCode int
	Method     string
	// URL is the request URL without userinfo, query or fragment.
	URL string
	// RequestID is the request ID the request carried, if any.
	RequestID string
	// Body holds at most 512 bytes of the response body.
	Body []byte
	// RetryAfter is the pause the upstream asked for (Retry-After or
	// RateLimit-Reset), valid when HasRetryAfter is true.
	RetryAfter    time.Duration
	HasRetryAfter bool
}

// Error returns a one-line description.
func (e *StatusError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "outbound: %s %s: %d %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request_id=%s)", e.RequestID)
	}
	if e.HasRetryAfter {
		fmt.Fprintf(&b, " (retry_after=%v)", e.RetryAfter)
	}
	if len(e.Body) > 0 {
		b.WriteString(": ")
		b.WriteString(oneLine(e.Body))
	}
	return b.String()
}

// CheckResponse returns nil when resp's status is 2xx or 3xx, leaving the body
// alone. Otherwise it reads at most 512 bytes of the body, closes it, and
// returns a *StatusError. The request ID comes from the request's context or
// its X-Request-ID header.
func CheckResponse(resp *http.Response) error {
	if resp == nil {
		return fmt.Errorf("outbound: CheckResponse: nil response")
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return nil
	}
	e := &StatusError{StatusCode: resp.StatusCode}
	if req := resp.Request; req != nil {
		e.Method = req.Method
		e.URL = RedactURL(req.URL)
		if id, ok := callctx.RequestID(req.Context()); ok {
			e.RequestID = id
		} else {
			e.RequestID = req.Header.Get("X-Request-ID")
		}
	}
	if resp.Body != nil {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxSnippet))
		resp.Body.Close()
		if len(snippet) > 0 {
			e.Body = snippet
		}
	}
	e.RetryAfter, e.HasRetryAfter = pushback.Delay(resp.Header, time.Now())
	return e
}

// RedactURL returns u as a string without userinfo, query and fragment, fit
// for errors and logs.
func RedactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath, Opaque: u.Opaque}
	return c.String()
}

// oneLine keeps printable text on one line: control bytes become spaces and
// invalid UTF-8 is replaced, so an upstream cannot forge log lines.
func oneLine(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
