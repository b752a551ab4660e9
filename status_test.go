package outbound

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/outboundhttp/outbound/transport/budget"
	"github.com/outboundhttp/outbound/transport/circuit"
	"github.com/outboundhttp/outbound/transport/ratelimit"
)

func TestStatusFor(t *testing.T) {
	urlErr := func(err error) error { return &url.Error{Op: "Get", URL: "http://x.test", Err: err} }
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 200},
		{"budget", urlErr(fmt.Errorf("wrapped: %w", budget.ErrExhausted)), 504},
		{"deadline", urlErr(context.DeadlineExceeded), 504},
		{"body idle", ErrBodyIdle, 504},
		{"net timeout", urlErr(os.ErrDeadlineExceeded), 504},
		{"rate limited", urlErr(&ratelimit.LimitError{Key: "k", Reason: ratelimit.ReasonRate}), 503},
		{"circuit open", urlErr(&circuit.OpenError{Key: "k", State: circuit.Open, RetryIn: time.Second}), 503},
		{"canceled", urlErr(context.Canceled), StatusClientClosedRequest},
		{"upstream 500", &StatusError{StatusCode: 500}, 502},
		{"upstream 503", &StatusError{StatusCode: 503}, 502},
		{"upstream 404", &StatusError{StatusCode: 404}, 502},
		{"refused", urlErr(&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), 502},
		{"other", errors.New("boom"), 502},
	} {
		if got := StatusFor(tc.err); got != tc.want {
			t.Errorf("%s: StatusFor(%v) = %d; want %d", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestRetryAfterFor(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want time.Duration
		ok   bool
	}{
		{&circuit.OpenError{RetryIn: 3 * time.Second}, 3 * time.Second, true},
		{fmt.Errorf("x: %w", &ratelimit.LimitError{RetryAfter: time.Second}), time.Second, true},
		{&StatusError{StatusCode: 503, RetryAfter: 2 * time.Second, HasRetryAfter: true}, 2 * time.Second, true},
		{&ratelimit.LimitError{}, 0, false},
		{errors.New("x"), 0, false},
	} {
		got, ok := RetryAfterFor(tc.err)
		if got != tc.want || ok != tc.ok {
			t.Errorf("RetryAfterFor(%v) = %v, %v; want %v, %v", tc.err, got, ok, tc.want, tc.ok)
		}
	}
}
