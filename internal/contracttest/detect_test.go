package contracttest_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/outboundhttp/outbound/internal/contracttest"
)

// broken are layers that each break one rule of the contract. TestBroken
// runs the suite on them in a child process (the suite must fail there), and
// TestSuiteDetects checks that it does, with the message of that rule.
var broken = []struct {
	name  string
	newRT func(http.RoundTripper) http.RoundTripper
	opts  []contracttest.Option
	want  string // in the child's output
}{
	{
		name:  "PassesNilNil",
		newRT: func(next http.RoundTripper) http.RoundTripper { return forward{next: next} },
		want:  "RoundTrip returned a nil response and a nil error",
	},
	{
		name:  "PassesResponseAndError",
		newRT: func(next http.RoundTripper) http.RoundTripper { return forward{next: next} },
		want:  "RoundTrip returned a response (200) and an error",
	},
	{
		name:  "PassesNilBody",
		newRT: func(next http.RoundTripper) http.RoundTripper { return forward{next: next} },
		want:  "with a nil Body",
	},
	{
		name: "ModifiesCallerHeader",
		newRT: func(next http.RoundTripper) http.RoundTripper {
			return forward{next: next, before: func(r *http.Request) *http.Request { r.Header.Set("X-Added", "1"); return r }}
		},
		want: "caller's request: header",
	},
	{
		name: "CancelsOnReturn",
		newRT: func(next http.RoundTripper) http.RoundTripper {
			return forward{next: next, ctx: func(ctx context.Context) (context.Context, func(*http.Response)) {
				ctx, cancel := context.WithCancel(ctx)
				return ctx, func(*http.Response) { cancel() }
			}}
		},
		want: "ended while the caller reads the body",
	},
	{
		name: "NeverReleases",
		newRT: func(next http.RoundTripper) http.RoundTripper {
			return forward{next: next, ctx: func(ctx context.Context) (context.Context, func(*http.Response)) {
				ctx, cancel := context.WithCancel(ctx)
				return ctx, func(*http.Response) { _ = cancel } // never called: the leak is the point
			}}
		},
		want: "still alive after Close",
	},
	{
		name: "DropsWriter",
		newRT: func(next http.RoundTripper) http.RoundTripper {
			return forward{next: next, ctx: func(ctx context.Context) (context.Context, func(*http.Response)) {
				return ctx, func(resp *http.Response) {
					if resp != nil && resp.Body != nil {
						resp.Body = struct{ io.ReadCloser }{resp.Body}
					}
				}
			}}
		},
		want: "not an io.Writer",
	},
	{
		name: "NoCloseIdleConnections",
		newRT: func(next http.RoundTripper) http.RoundTripper {
			return contracttest.RoundTripFunc(keeper{next}.RoundTrip)
		},
		want: "has no CloseIdleConnections method",
	},
	{
		name: "ClosesIdleConnections",
		newRT: func(next http.RoundTripper) http.RoundTripper {
			return forward{next: next, before: func(r *http.Request) *http.Request {
				next.(interface{ CloseIdleConnections() }).CloseIdleConnections()
				return r
			}}
		},
		want: "a layer never closes the idle connections of a shared transport",
	},
	{
		name:  "RefusesWithoutClosingBody",
		newRT: newKeeper,
		opts: []contracttest.Option{contracttest.Refuses(func(http.RoundTripper) http.RoundTripper {
			return keeper{contracttest.RoundTripFunc(func(*http.Request) (*http.Response, error) {
				return nil, context.DeadlineExceeded
			})}
		})},
		want: "request body 1 of 2 was not closed",
	},
	{
		name:  "WaitsPastDeadline",
		newRT: newKeeper,
		opts: []contracttest.Option{contracttest.Waits(func(next http.RoundTripper) http.RoundTripper {
			return keeper{contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
				t := time.NewTimer(time.Minute) // go-retryablehttp's sleep: blind to the deadline
				defer t.Stop()
				select {
				case <-t.C:
				case <-r.Context().Done():
					r.Body.Close()
					return nil, r.Context().Err()
				}
				return next.RoundTrip(r)
			})}
		})},
		want: "want a wait that cannot end before the deadline",
	},
	{
		name:  "DiscardsUndrained",
		newRT: newKeeper,
		opts: []contracttest.Option{contracttest.Discards(func(next http.RoundTripper) http.RoundTripper {
			return keeper{contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
				resp, err := next.RoundTrip(r)
				if err != nil {
					return nil, err
				}
				resp.Body.Close() // not drained: the connection is lost
				r2 := r.Clone(r.Context())
				r2.Body, _ = r.GetBody()
				return next.RoundTrip(r2)
			})}
		})},
		want: "drained false before Close",
	},
}

// forward is a layer that breaks the rules it is told to: it passes next's
// outcome on unchecked, and before and ctx let it change the request and
// hold a context.
type forward struct {
	next   http.RoundTripper
	before func(*http.Request) *http.Request
	ctx    func(context.Context) (context.Context, func(*http.Response))
}

func (f forward) RoundTrip(req *http.Request) (*http.Response, error) {
	if f.before != nil {
		req = f.before(req)
	}
	after := func(*http.Response) {}
	if f.ctx != nil {
		var ctx context.Context
		ctx, after = f.ctx(req.Context())
		req = req.WithContext(ctx)
	}
	resp, err := f.next.RoundTrip(req)
	after(resp)
	return resp, err
}

func (f forward) CloseIdleConnections() {
	if c, ok := f.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// TestBroken runs the suite on the broken layers; it runs only in the child
// process of TestSuiteDetects, where it is expected to fail.
func TestBroken(t *testing.T) {
	if os.Getenv("CONTRACTTEST_BROKEN") != "1" {
		t.Skip("run by TestSuiteDetects in a child process")
	}
	for _, b := range broken {
		t.Run(b.name, func(t *testing.T) {
			opts := []contracttest.Option{
				contracttest.NeverRefuses("-"), contracttest.NeverWaits("-"), contracttest.NeverDiscards("-"),
			}
			contracttest.Run(t, b.newRT, append(opts, b.opts...)...)
		})
	}
}

func TestSuiteDetects(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the test binary once per broken layer")
	}
	for _, b := range broken {
		t.Run(b.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestBroken$/^"+b.name+"$", "-test.count=1")
			cmd.Env = append(os.Environ(), "CONTRACTTEST_BROKEN=1")
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a layer that breaks the contract; output:\n%s", out)
			}
			if !strings.Contains(string(out), b.want) {
				t.Errorf("the suite failed without saying %q; output:\n%s", b.want, out)
			}
		})
	}
}
