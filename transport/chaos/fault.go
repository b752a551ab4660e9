package chaos

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Kind says what a Fault does to a request.
type Kind uint8

// Fault kinds. Latency adds to every other kind; of the kinds that decide the
// answer (Status, Reset, Hang) the first that fires wins; of the kinds that
// slow the body (Stall, Trickle) the first that fires wins. Capacity stands
// apart: it puts a request through the upstream's queue and workers before
// the others play, or sheds it, and then nothing else plays.
const (
	// KindNone: no fault (a healthy answer, in a Record).
	KindNone Kind = iota
	// KindLatency delays the attempt by Delay, a uniform draw from
	// [Delay, MaxDelay], or DelayFunc.
	KindLatency
	// KindStatus answers with Status and Header instead of the upstream.
	KindStatus
	// KindReset fails the attempt with a connection reset.
	KindReset
	// KindHang never answers: the attempt ends when its context does.
	KindHang
	// KindStall sends the first Bytes bytes of the body, then nothing more
	// until the context ends or the body is closed.
	KindStall
	// KindTrickle delivers the body Bytes bytes at a time, one chunk per Every.
	KindTrickle
	// KindCapacity makes the upstream one of fixed capacity: Workers
	// workers, each taking Work per request, behind a FIFO queue; a request
	// that arrives when ShedAbove requests are already in flight (queued or
	// being worked) is answered Status (503) at once. It fires when it sheds.
	// See Capacity.
	KindCapacity
)

// String returns the kind's name, as used in Record and Stats.
func (k Kind) String() string {
	switch k {
	case KindNone:
		return "none"
	case KindLatency:
		return "latency"
	case KindStatus:
		return "status"
	case KindReset:
		return "reset"
	case KindHang:
		return "hang"
	case KindStall:
		return "stall"
	case KindTrickle:
		return "trickle"
	case KindCapacity:
		return "capacity"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// MarshalText encodes k as its name, so Records and Stats read well as JSON.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText decodes a name written by MarshalText.
func (k *Kind) UnmarshalText(b []byte) error {
	for c := KindNone; c <= KindCapacity; c++ {
		if c.String() == string(b) {
			*k = c
			return nil
		}
	}
	return fmt.Errorf("chaos: unknown fault kind %q", b)
}

func (k Kind) decides() bool   { return k == KindStatus || k == KindReset || k == KindHang }
func (k Kind) slowsBody() bool { return k == KindStall || k == KindTrickle }

// answersStatus reports whether an answer of kind k is a status: a Status
// fault's, or a Capacity fault's when it sheds.
func (k Kind) answersStatus() bool { return k == KindStatus || k == KindCapacity }

// Fault is one failure to inject. It is a plain value: build it with the
// constructors (Status, Burst, Outage, ConnReset, ...) and narrow it with the
// With/For/During/Times methods, or fill the fields directly.
//
// A fault fires on a request when the request's host matches Host, the time
// since the scenario started lies in [From, Until), the fault has fired fewer
// than Count times, and a draw from the seeded generator falls under
// Probability.
type Fault struct {
	Kind Kind

	// Host restricts the fault to requests for this host: req.URL.Host for
	// a Transport, the Host header for a Server. Compared case-insensitively;
	// without a port it matches every port. Empty matches every host.
	Host string
	// Probability is the chance, in [0, 1], that the fault fires on a
	// matching request. Zero means 1 (always), so windows and bursts need not
	// spell it out; leave a fault out of the scenario to disable it.
	Probability float64
	// From and Until bound the time, since the scenario started, during
	// which the fault is active. Until zero means no end.
	From, Until time.Duration
	// Count caps how many times the fault fires; zero means no cap.
	Count int

	// Status and Header are the answer of a KindStatus fault, and of the
	// requests a KindCapacity fault sheds (there Status 0 means 503). Header
	// is added to the response (for example Retry-After).
	Status int
	Header http.Header

	// Delivered, for KindReset and KindHang in a Transport, passes the
	// request on and throws the answer away before failing, as when a
	// connection dies after the upstream received (and perhaps processed)
	// the request: the case that duplicates non-idempotent requests when a
	// client retries them. A Server always fails after receiving.
	Delivered bool

	// Delay and MaxDelay are a KindLatency fault's added latency: Delay, or
	// a uniform draw from [Delay, MaxDelay] when MaxDelay > Delay.
	Delay, MaxDelay time.Duration
	// DelayFunc, when set, draws a KindLatency fault's latency instead. It is
	// called under the scenario's lock with the scenario's generator, so the
	// draws stay reproducible; it must not block.
	DelayFunc func(r *rand.Rand) time.Duration

	// Bytes is, for KindStall, the number of body bytes delivered before
	// the body stalls (0: headers only); for KindTrickle, the size of each
	// chunk (at least 1).
	Bytes int
	// Every is the pause before each chunk of a KindTrickle body.
	Every time.Duration

	// Workers, Work and ShedAbove are a KindCapacity fault's upstream: the
	// number of requests worked at once, the time each takes, and the most
	// requests in flight (queued or worked) before newcomers are shed.
	Workers   int
	Work      time.Duration
	ShedAbove int
}

// Latency returns a fault that delays every attempt by d.
func Latency(d time.Duration) Fault { return Fault{Kind: KindLatency, Delay: d} }

// LatencyUniform returns a fault that delays every attempt by a uniform draw
// from [lo, hi].
func LatencyUniform(lo, hi time.Duration) Fault {
	return Fault{Kind: KindLatency, Delay: lo, MaxDelay: hi}
}

// LatencyFunc returns a fault that delays every attempt by f's draw, for
// distributions with a long tail (see Fault.DelayFunc).
func LatencyFunc(f func(r *rand.Rand) time.Duration) Fault {
	return Fault{Kind: KindLatency, DelayFunc: f}
}

// Status returns a fault that answers every attempt with code. Narrow it with
// WithProbability, During or Times.
func Status(code int) Fault { return Fault{Kind: KindStatus, Status: code} }

// Burst returns a fault that answers the next n attempts (n == 0: every
// attempt; narrow it with During) with 429 Too Many Requests and Retry-After:
// retryAfter, rounded up to whole seconds (RFC 9110 §10.2.3 allows no
// fractions).
func Burst(n int, retryAfter time.Duration) Fault {
	return Status(http.StatusTooManyRequests).Times(n).WithRetryAfter(retryAfter)
}

// Outage returns a fault that answers every attempt with 503 Service
// Unavailable from from to until after the scenario started. For an outage
// that resets connections instead, use ConnReset().During(from, until).
func Outage(from, until time.Duration) Fault {
	return Status(http.StatusServiceUnavailable).During(from, until)
}

// ConnReset returns a fault that fails every attempt with a connection reset:
// from a Transport, a *net.OpError for which errors.Is(err,
// syscall.ECONNRESET) holds; from a Server, a real TCP RST.
func ConnReset() Fault { return Fault{Kind: KindReset} }

// Hang returns a fault that never answers: the attempt ends when its context
// does (a Transport returns ctx.Err()) or when the Server closes.
func Hang() Fault { return Fault{Kind: KindHang} }

// Stall returns a fault whose response body delivers its first n bytes and
// then nothing until the context ends or the body is closed.
func Stall(n int) Fault { return Fault{Kind: KindStall, Bytes: n} }

// Trickle returns a fault whose response body arrives n bytes at a time, one
// chunk per every.
func Trickle(n int, every time.Duration) Fault {
	return Fault{Kind: KindTrickle, Bytes: n, Every: every}
}

// Capacity returns a fault that makes the upstream a server of fixed
// capacity, workers/work requests per second: workers workers, each taking
// work per request, behind a FIFO queue, and an immediate 503 Service
// Unavailable for a request that arrives when shedAbove requests are already
// in flight (queued or being worked), so that at most shedAbove are ever in
// flight. A shed request is answered at once, without injected latency, and
// no other fault plays on it; WithHeader and WithRetryAfter add to its answer.
//
// An admitted request plays its injected latency, waits in the queue for a
// worker, holds the worker for work, and is then answered as the other faults
// decide (the healthy answer when none fires). A request whose context ends
// while it waits leaves the queue having taken nothing; one whose context
// ends while it is worked frees its worker at once (this upstream notices
// that its client left). In a Server the request is then recorded as
// Canceled. The waits are real timers, so they are virtual in a
// testing/synctest bubble when the Transport or Server is created inside it.
//
// The queue, the workers and the count of requests in flight belong to the
// Transport or Server that plays the fault, shared by every request it
// matches (narrow it with ForHost or During); they are not reset by Restart,
// because requests in flight are still in flight. The fault takes no
// probability and no count: a capacity applies to every request it matches.
// NewTransport and NewServer panic if workers < 1, work <= 0 or shedAbove <
// workers (some workers could never be busy).
func Capacity(workers int, work time.Duration, shedAbove int) Fault {
	return Fault{Kind: KindCapacity, Workers: workers, Work: work, ShedAbove: shedAbove}
}

// WithProbability returns a copy of f that fires with probability p.
func (f Fault) WithProbability(p float64) Fault { f.Probability = p; return f }

// ForHost returns a copy of f restricted to host (see Fault.Host).
func (f Fault) ForHost(host string) Fault { f.Host = host; return f }

// During returns a copy of f active from from to until after the scenario
// started; until zero means no end.
func (f Fault) During(from, until time.Duration) Fault { f.From, f.Until = from, until; return f }

// Times returns a copy of f that fires at most n times (0: no cap).
func (f Fault) Times(n int) Fault { f.Count = n; return f }

// AfterDelivery returns a copy of f with Delivered set (see Fault.Delivered).
func (f Fault) AfterDelivery() Fault { f.Delivered = true; return f }

// WithHeader returns a copy of f whose answer carries the header key: value.
// The copy has its own Header map.
func (f Fault) WithHeader(key, value string) Fault {
	h := f.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Add(key, value)
	f.Header = h
	return f
}

// WithRetryAfter returns a copy of f whose answer carries Retry-After: d,
// rounded up to whole seconds.
func (f Fault) WithRetryAfter(d time.Duration) Fault {
	secs := (d + time.Second - 1) / time.Second
	h := f.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Retry-After", strconv.FormatInt(int64(secs), 10))
	f.Header = h
	return f
}

// String describes f briefly, for messages and scorecards.
func (f Fault) String() string {
	var b strings.Builder
	b.WriteString(f.Kind.String())
	switch f.Kind {
	case KindStatus:
		fmt.Fprintf(&b, " %d", f.Status)
	case KindLatency:
		if f.DelayFunc != nil {
			b.WriteString(" func")
		} else if f.MaxDelay > f.Delay {
			fmt.Fprintf(&b, " %v-%v", f.Delay, f.MaxDelay)
		} else {
			fmt.Fprintf(&b, " %v", f.Delay)
		}
	case KindStall:
		fmt.Fprintf(&b, " after %dB", f.Bytes)
	case KindTrickle:
		fmt.Fprintf(&b, " %dB/%v", f.Bytes, f.Every)
	case KindCapacity:
		fmt.Fprintf(&b, " %dx%v shed-above=%d", f.Workers, f.Work, f.ShedAbove)
		if f.Status != 0 && f.Status != http.StatusServiceUnavailable {
			fmt.Fprintf(&b, " status=%d", f.Status)
		}
	}
	if f.Host != "" {
		fmt.Fprintf(&b, " host=%s", f.Host)
	}
	if f.Probability != 0 {
		fmt.Fprintf(&b, " p=%g", f.Probability)
	}
	if f.From != 0 || f.Until != 0 {
		fmt.Fprintf(&b, " during=[%v,%v)", f.From, f.Until)
	}
	if f.Count != 0 {
		fmt.Fprintf(&b, " times=%d", f.Count)
	}
	return b.String()
}

// validate reports a programmer error in f, for a panic at construction.
func (f Fault) validate() error {
	if f.Probability < 0 || f.Probability > 1 || f.Probability != f.Probability {
		return fmt.Errorf("probability %v out of [0, 1]", f.Probability)
	}
	if f.From < 0 || f.Until < 0 || (f.Until != 0 && f.Until <= f.From) {
		return fmt.Errorf("window [%v, %v) is empty or negative", f.From, f.Until)
	}
	if f.Count < 0 {
		return fmt.Errorf("negative count %d", f.Count)
	}
	switch f.Kind {
	case KindLatency:
		if f.Delay < 0 || f.MaxDelay < 0 {
			return fmt.Errorf("negative latency")
		}
	case KindStatus:
		// 1xx are interim answers, not the end of an exchange.
		if f.Status < 200 || f.Status > 999 {
			return fmt.Errorf("status %d is not a final HTTP status (200-999)", f.Status)
		}
	case KindReset, KindHang:
	case KindStall:
		if f.Bytes < 0 {
			return fmt.Errorf("negative byte count %d", f.Bytes)
		}
	case KindTrickle:
		if f.Bytes < 1 || f.Every < 0 {
			return fmt.Errorf("trickle needs at least 1 byte per chunk and a non-negative interval")
		}
	case KindCapacity:
		switch {
		case f.Workers < 1:
			return fmt.Errorf("capacity needs at least 1 worker, not %d", f.Workers)
		case f.Work <= 0:
			return fmt.Errorf("capacity needs a positive work time, not %v", f.Work)
		case f.ShedAbove < f.Workers:
			return fmt.Errorf("capacity sheds above %d in flight, fewer than its %d workers: some could never be busy", f.ShedAbove, f.Workers)
		case f.Probability != 0 && f.Probability != 1, f.Count != 0:
			return fmt.Errorf("capacity applies to every request it matches: no probability or count")
		case f.Status != 0 && (f.Status < 200 || f.Status > 999):
			return fmt.Errorf("shed status %d is not a final HTTP status (200-999)", f.Status)
		}
	default:
		return fmt.Errorf("unknown kind %d", f.Kind)
	}
	return nil
}

// Scenario is a named, seeded set of faults: a plain value that Transport
// and Server both play, so a drill can be defined once and run either way.
type Scenario struct {
	// Name labels the scenario in scorecards; chaos does not use it.
	Name string
	// Seed seeds the fault generator: the same seed and the same sequence
	// of requests give the same sequence of faults.
	Seed int64
	// Faults are evaluated in order on every request (see Kind).
	Faults []Fault
}
