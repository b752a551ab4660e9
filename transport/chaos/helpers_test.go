package chaos

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// withSleep replaces how a Transport or Server waits, for the few tests that
// need what a testing/synctest bubble cannot give: timers that fire late, or
// a count of the waits running at once. Every other test measures its waits
// on the bubble's clock.
func withSleep(f sleeper) Option { return optionFunc(func(c *config) { c.sleep = f }) }

// trackedBody records whether it was closed.
type trackedBody struct {
	io.Reader
	closed atomic.Bool
}

func (b *trackedBody) Close() error { b.closed.Store(true); return nil }

// fakeBase answers 200 with text and counts calls; it closes request bodies
// as a real transport does. The response bodies it made are in bodies.
type fakeBase struct {
	text   string
	calls  atomic.Int32
	mu     sync.Mutex
	bodies []*trackedBody
}

func (f *fakeBase) RoundTrip(req *http.Request) (*http.Response, error) {
	f.calls.Add(1)
	if req.Body != nil {
		req.Body.Close()
	}
	b := &trackedBody{Reader: strings.NewReader(f.text)}
	f.mu.Lock()
	f.bodies = append(f.bodies, b)
	f.mu.Unlock()
	return &http.Response{
		StatusCode: 200, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: b, ContentLength: int64(len(f.text)), Request: req,
	}, nil
}

// newReq returns a POST to url with a tracked body.
func newReq(t *testing.T, ctx context.Context, url string) (*http.Request, *trackedBody) {
	t.Helper()
	b := &trackedBody{Reader: strings.NewReader("payload")}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, b)
	if err != nil {
		t.Fatal(err)
	}
	return req, b
}
