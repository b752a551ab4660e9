package retry

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
)

// statusReason returns the low-cardinality reason for a response status.
func statusReason(code int) string {
	switch code {
	case http.StatusRequestTimeout:
		return "status_408"
	case http.StatusTooManyRequests:
		return "status_429"
	case http.StatusBadGateway:
		return "status_502"
	case http.StatusServiceUnavailable:
		return "status_503"
	case http.StatusGatewayTimeout:
		return "status_504"
	}
	return "status_" + strconv.Itoa(code)
}

// errReason classifies a transport error. retryable reports whether the class
// is retried by default; unsent whether the error proves the server did not
// process the request, which makes even a POST safe to repeat.
func errReason(err error) (reason string, retryable, unsent bool) {
	var opErr *net.OpError
	dial := errors.As(err, &opErr) && opErr.Op == "dial"
	msg := err.Error()
	switch {
	case isProtocolViolation(msg):
		// The upstream answered, but not in valid HTTP/1.1 (headers over the
		// transport's limit, a malformed status line or header, bad framing).
		// net/http reports these as a broken connection, yet the same upstream
		// sends the same answer again: retrying only repeats the waste (up to
		// the header limit per attempt).
		return "protocol_error", false, false
	case errors.Is(err, syscall.ECONNREFUSED):
		// Refused at connect: nothing was sent.
		return "connection_refused", true, true
	case strings.Contains(msg, "REFUSED_STREAM"):
		// RFC 9113 §8.7: REFUSED_STREAM means no processing has occurred.
		return "http2_refused_stream", true, true
	case isTimeout(err):
		return "timeout", true, dial
	case errors.Is(err, syscall.ECONNRESET):
		return "connection_reset", true, dial
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof", true, false
	case strings.Contains(msg, "GOAWAY"):
		return "http2_goaway", true, false
	case strings.Contains(msg, "server closed idle connection"),
		strings.Contains(msg, "connection broken"):
		// net/http's errServerClosedIdle and "HTTP/1.x transport connection
		// broken": the connection dropped before a response.
		return "eof", true, false
	}
	if dial {
		return "dial", false, true
	}
	return "error", false, false
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// isProtocolViolation reports whether msg is one of net/http's errors for a
// response that is not valid HTTP/1.1. net/http exports no sentinels for
// them, so they are matched by text, like its own errServerClosedIdle above.
func isProtocolViolation(msg string) bool {
	for _, s := range []string{
		"server response headers exceeded", // Transport.MaxResponseHeaderBytes
		"malformed HTTP",                   // status line, version or status code
		"malformed MIME header",            // textproto: a header line
		"bad Content-Length",
		"multiple Content-Length",
		"unsupported transfer encoding",
	} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
