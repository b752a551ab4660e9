package budget

import (
	"fmt"
	"net/textproto"
	"strconv"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Defaults.
const (
	// DefaultTotal is the budget of one logical call, retries and waits
	// included: the reference article's "10-second user-facing SLA".
	DefaultTotal = 10 * time.Second
	// DefaultMinRemaining is the least time worth sending a request with. With
	// less left, a request cannot plausibly get an answer (one loopback round
	// trip plus a server's scheduling is already milliseconds), so it is not
	// sent and the call fails at once instead of adding load that is thrown
	// away.
	DefaultMinRemaining = 10 * time.Millisecond
	// DefaultDeadlineHeader carries the remaining budget in whole
	// milliseconds, like Envoy's x-envoy-expected-rq-timeout-ms and gRPC's
	// grpc-timeout (which is also relative, for the same reason: clocks of
	// two hosts disagree).
	DefaultDeadlineHeader = "Request-Timeout-Ms"
	// DefaultHeader is the former name of DefaultDeadlineHeader.
	//
	// Deprecated: use DefaultDeadlineHeader.
	DefaultHeader = DefaultDeadlineHeader
	// DefaultSafetyMargin is subtracted from the remaining budget before it is
	// sent, so the upstream gives up slightly before the caller does and its
	// answer (or error) can still arrive in time. It covers one-way network
	// latency and the time before the upstream reads the header.
	DefaultSafetyMargin = 5 * time.Millisecond
)

// maxHeaderDigits bounds the inbound header: 10 digits is up to ~115 days in
// milliseconds, far above any sane budget and far below time.Duration's
// range, so the value can never overflow.
const maxHeaderDigits = 10

// Option configures Transport, PropagateTransport and Handler. Each takes the
// options it uses and ignores the others: Transport uses WithTotal and
// WithMinRemaining; PropagateTransport uses WithDeadlineHeader and
// WithSafetyMargin; Handler uses WithDeadlineHeader, WithMaxInbound and
// WithTotal (the default of WithMaxInbound).
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	total        time.Duration
	minRemaining time.Duration
	header       string // canonical
	margin       time.Duration
	maxInbound   time.Duration // 0: total
}

func newConfig(opts []Option) config {
	c := config{
		total:        DefaultTotal,
		minRemaining: DefaultMinRemaining,
		header:       textproto.CanonicalMIMEHeaderKey(DefaultHeader),
		margin:       DefaultSafetyMargin,
	}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if c.minRemaining >= c.total {
		panic(fmt.Sprintf("budget: WithMinRemaining(%v) must be below WithTotal(%v): every request would be refused", c.minRemaining, c.total))
	}
	if c.maxInbound == 0 {
		c.maxInbound = c.total
	}
	return c
}

// WithTotal sets the budget of one logical call (default DefaultTotal, 10 s):
// the call's context gets the deadline min(parent deadline, now + d). It
// panics if d is not positive.
func WithTotal(d time.Duration) Option {
	if d <= 0 {
		panic(fmt.Sprintf("budget: WithTotal(%v): d must be positive", d))
	}
	return optionFunc(func(c *config) { c.total = d })
}

// WithMinRemaining sets the least time left for which a request is still sent
// (default DefaultMinRemaining, 10 ms); with less, the call fails at once with
// an ExhaustedError whose LocalRefusal is true. Zero sends whenever any time
// is left. It panics if d is negative or not below the total budget.
func WithMinRemaining(d time.Duration) Option {
	if d < 0 {
		panic(fmt.Sprintf("budget: WithMinRemaining(%v): d must not be negative", d))
	}
	return optionFunc(func(c *config) { c.minRemaining = d })
}

// WithDeadlineHeader sets the header that carries the remaining budget in
// milliseconds, sent by PropagateTransport and read by Handler (default
// DefaultHeader, Request-Timeout-Ms). It panics if name is not a valid header
// field name (RFC 9110 §5.6.2 token).
func WithDeadlineHeader(name string) Option {
	if !httpguts.ValidHeaderFieldName(name) {
		panic("budget: WithDeadlineHeader(" + strconv.Quote(name) + "): not a valid header field name")
	}
	key := textproto.CanonicalMIMEHeaderKey(name)
	return optionFunc(func(c *config) { c.header = key })
}

// WithSafetyMargin sets how much PropagateTransport subtracts from the
// remaining budget before sending it (default DefaultSafetyMargin, 5 ms). It
// panics if d is negative.
func WithSafetyMargin(d time.Duration) Option {
	if d < 0 {
		panic(fmt.Sprintf("budget: WithSafetyMargin(%v): d must not be negative", d))
	}
	return optionFunc(func(c *config) { c.margin = d })
}

// WithMaxInbound caps the budget Handler accepts from a client (default: the
// total budget, WithTotal, 10 s unless set): a larger value is lowered to d,
// so a client cannot make a server hold work open longer than it would for
// its own calls. It panics if d is not positive.
func WithMaxInbound(d time.Duration) Option {
	if d <= 0 {
		panic(fmt.Sprintf("budget: WithMaxInbound(%v): d must be positive", d))
	}
	return optionFunc(func(c *config) { c.maxInbound = d })
}
