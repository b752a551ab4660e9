package callctx_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/internal/contracttest"
	"github.com/outboundhttp/outbound/transport/budget"
	"github.com/outboundhttp/outbound/transport/requestid"
)

// TestRequestIDOverBudgetShareTheCall: a request-ID layer directly above a
// budget layer makes the call's one context and request copy, and the budget
// layer fills its deadline in: the layer below sees the ID, the header and
// the deadline on one request, the call allocates one context and one
// request copy fewer than the two layers apart, and the deadline still ends
// with the body.
func TestRequestIDOverBudgetShareTheCall(t *testing.T) {
	var got *http.Request
	resp := &http.Response{StatusCode: 200, Body: http.NoBody}
	base := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		got = r
		return resp, nil
	})
	rt := requestid.NewTransport(budget.NewTransport(base, budget.WithTotal(time.Minute)))
	req, _ := http.NewRequest("GET", "http://a.test/", nil)
	if _, err := rt.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	id, ok := callctx.RequestID(got.Context())
	if !ok || got.Header.Get(requestid.DefaultHeader) != id {
		t.Errorf("below: ID %q in the context, %q in the header; want the same", id, got.Header.Get(requestid.DefaultHeader))
	}
	if dl, ok := got.Context().Deadline(); !ok || time.Until(dl) > time.Minute || time.Until(dl) < 50*time.Second {
		t.Errorf("below: deadline %v, %v; want about a minute from now", dl, ok)
	}
	if got.Context().Err() == nil {
		t.Error("below: context not released with a body-less response")
	}
	if req.Context().Err() != nil || req.Header.Get(requestid.DefaultHeader) != "" {
		t.Error("the caller's request was changed")
	}

	between := requestid.NewTransport(passThrough{budget.NewTransport(base, budget.WithTotal(time.Minute))})
	together := testing.AllocsPerRun(100, func() { rt.RoundTrip(req) })
	apart := testing.AllocsPerRun(100, func() { between.RoundTrip(req) })
	if together != apart-2 {
		t.Errorf("allocations: %v together, %v with a layer between; want 2 fewer together (a context and a request copy)", together, apart)
	}
}

// passThrough is a layer between that does not adopt the call's context.
type passThrough struct{ next http.RoundTripper }

func (p passThrough) RoundTrip(r *http.Request) (*http.Response, error) { return p.next.RoundTrip(r) }

// resendTwice sends the request it is given, closes the answer, and sends
// it again, as a retry layer would.
type resendTwice struct{ next http.RoundTripper }

func (s resendTwice) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := s.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return s.next.RoundTrip(r)
}

// TestNoSharingAcrossALayerBetween: with a layer between that sends the
// request twice, the request-ID layer does not bind its context, so the
// second send is not made under the first one's released deadline.
func TestNoSharingAcrossALayerBetween(t *testing.T) {
	base := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		if err := r.Context().Err(); err != nil {
			return nil, err
		}
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("ok"))}, nil
	})
	rt := requestid.NewTransport(resendTwice{budget.NewTransport(base)})
	req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://a.test/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("second send: %v; want a response", err)
	}
	resp.Body.Close()
}
