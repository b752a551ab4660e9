package outbound

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/outboundhttp/outbound/internal/callctx"
)

type closeTracker struct {
	io.Reader
	closed bool
}

func (c *closeTracker) Close() error { c.closed = true; return nil }

func TestCheckResponse(t *testing.T) {
	ok := &http.Response{StatusCode: 204, Body: http.NoBody}
	if err := CheckResponse(ok); err != nil {
		t.Fatalf("CheckResponse(204) = %v; want nil", err)
	}
	redirect := &http.Response{StatusCode: 304, Body: http.NoBody}
	if err := CheckResponse(redirect); err != nil {
		t.Fatalf("CheckResponse(304) = %v; want nil", err)
	}

	req := httptest.NewRequest("GET", "https://user:pass@api.example.com/v1/users/7?token=abc#frag", nil)
	req = req.WithContext(callctx.WithRequestID(context.Background(), "req-123"))
	body := &closeTracker{Reader: strings.NewReader("line one\r\nline two" + strings.Repeat("x", 2000))}
	resp := &http.Response{
		StatusCode: 503,
		Header:     http.Header{"Retry-After": {"2"}},
		Body:       body,
		Request:    req,
	}
	err := CheckResponse(resp)
	var se *StatusError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v; want *StatusError", err)
	}
	if !body.closed {
		t.Error("body not closed")
	}
	if se.StatusCode != 503 || se.Method != "GET" || se.RequestID != "req-123" {
		t.Errorf("got %+v", se)
	}
	if se.URL != "https://api.example.com/v1/users/7" {
		t.Errorf("URL = %q; want userinfo, query and fragment removed", se.URL)
	}
	if len(se.Body) != 512 {
		t.Errorf("snippet is %d bytes; want 512", len(se.Body))
	}
	if !se.HasRetryAfter || se.RetryAfter != 2*time.Second {
		t.Errorf("RetryAfter = %v, %v; want 2s", se.RetryAfter, se.HasRetryAfter)
	}
	msg := err.Error()
	for _, leak := range []string{"pass", "token=abc", "\n", "\r"} {
		if strings.Contains(msg, leak) {
			t.Errorf("message %q contains %q", msg, leak)
		}
	}
	if !strings.Contains(msg, "503 Service Unavailable") || !strings.Contains(msg, "request_id=req-123") {
		t.Errorf("message %q lacks the status or request ID", msg)
	}
}

func TestCheckResponseHeaderRequestID(t *testing.T) {
	req := httptest.NewRequest("POST", "http://example.test/x", nil)
	req.Header.Set("X-Request-ID", "from-header")
	err := CheckResponse(&http.Response{StatusCode: 400, Body: http.NoBody, Request: req})
	var se *StatusError
	if !errors.As(err, &se) || se.RequestID != "from-header" || se.HasRetryAfter {
		t.Fatalf("got %#v", err)
	}
}
