package chaos

import (
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Record is what a Server received in one request and how it answered.
type Record struct {
	// Seq numbers requests in order of arrival, from 0.
	Seq int
	// Time is when the request arrived (its header was read); Answered is when the Server committed to its answer:
	// after injected latency, when a whole answer had been written to the
	// connection, when it sent the status of a slow or stalling body, reset
	// the connection or began to hang.
	Time, Answered time.Time

	Method, Path, Host string
	// RequestID is the request-ID header (WithRequestIDHeader, default
	// X-Request-ID); empty when absent.
	RequestID string
	// Attempt is the attempt header (WithAttemptHeader, default X-Attempt)
	// as sent, or -1 when absent or not an integer.
	Attempt int
	// IdempotencyKey is the Idempotency-Key header; empty when absent.
	IdempotencyKey string
	// KeyOutcome is what a Server WithIdempotency did with the key: stored
	// its answer, replayed it, refused the request (in flight, mismatch) or
	// left it unused; KeyNone without the option or without a key.
	KeyOutcome KeyOutcome
	// BodyLen and BodyHash describe the request body (its first MiB):
	// BodyHash is a hex SHA-256 prefix, empty for an empty body.
	BodyLen  int64
	BodyHash string

	// Fault is the fault that decided the answer (status, reset, hang,
	// capacity when it shed the request with a 503) or,
	// when none did, the one that slowed the body (stall, trickle);
	// KindNone for a healthy answer.
	Fault Kind
	// Status is the status sent; 0 for a reset, a hang, or a request whose
	// client left before its answer (Canceled).
	Status int
	// Delay is the injected latency.
	Delay time.Duration
	// Canceled is set when the client left (or the Server closed) before
	// any answer: during the injected latency, or while it waited for or
	// held a worker of a Capacity fault.
	Canceled bool
	// RetryAfter is the Retry-After the answer carried (429 and 503
	// pushback), and NotBefore = Answered + RetryAfter the time before which
	// the client should not come back. Zero when there was none.
	RetryAfter time.Duration
	NotBefore  time.Time
}

// Idempotent reports whether the request's method is idempotent (RFC 9110
// §9.2.2) or the request carries an Idempotency-Key, that is, whether the
// server may safely receive it more than once.
func (r Record) Idempotent() bool {
	return idempotentMethod(r.Method) || r.IdempotencyKey != ""
}

// idempotentMethod reports whether m is idempotent (RFC 9110 §9.2.2).
func idempotentMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace,
		http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// Processed reports whether the Server did, or may have done, the work of
// the request. A Server without WithIdempotency cannot tell: every request
// that reached it counts, whatever the answer (see DuplicateDeliveries).
// With it, a replayed answer, a 409 or 422 for the key, and a keyed request
// answered before its work (KeySkipped) are deliveries but no processing.
func (r Record) Processed() bool {
	switch r.KeyOutcome {
	case KeyReplayed, KeyInFlight, KeyMismatch, KeySkipped:
		return false
	}
	return true
}

func sortBySeq(recs []Record) {
	slices.SortFunc(recs, func(a, b Record) int { return a.Seq - b.Seq })
}

// Amplification returns the number of requests the upstream received per
// call the client made: len(recs) / calls (0 when calls is 0). 1 means no
// retries reached the upstream; a retry storm shows as the attempt limit.
func Amplification(recs []Record, calls int) float64 {
	if calls <= 0 {
		return 0
	}
	return float64(len(recs)) / float64(calls)
}

// ByRequestID groups requests by their request ID, so a politeness violation
// is a retry of the same logical call that came back before the Retry-After
// it was given had elapsed. Requests without an ID are not attributed.
func ByRequestID(r Record) string { return r.RequestID }

// ByServer puts every request in one group, so a politeness violation is any
// request that arrived while a Retry-After the Server had already sent (to
// anyone) was running: the view of a server that asks all its clients to
// back off. Stricter than ByRequestID: requests already in flight when the
// pushback was sent count as soon as they arrive after it.
func ByServer(Record) string { return "*" }

// Violation is a request that arrived before a Retry-After had elapsed.
type Violation struct {
	// Request is the request that came too early.
	Request Record
	// Pushback is the answer with Retry-After that it ignored (of several,
	// the one with the latest NotBefore).
	Pushback Record
}

// PolitenessViolations returns the requests that arrived after the Server
// had answered another request of the same group (see ByRequestID and
// ByServer; requests whose key is "" are skipped) with a Retry-After, and
// before that Retry-After had elapsed. Each request is reported once.
func PolitenessViolations(recs []Record, key func(Record) string) []Violation {
	groups := map[string][]Record{}
	for _, r := range recs {
		if k := key(r); k != "" {
			groups[k] = append(groups[k], r)
		}
	}
	var out []Violation
	for _, g := range groups {
		var pushbacks []Record
		for _, p := range g {
			if !p.NotBefore.IsZero() {
				pushbacks = append(pushbacks, p)
			}
		}
		if len(pushbacks) == 0 {
			continue
		}
		for _, q := range g {
			var worst *Record
			for i := range pushbacks {
				p := &pushbacks[i]
				if p.Seq != q.Seq && q.Time.After(p.Answered) && q.Time.Before(p.NotBefore) &&
					(worst == nil || p.NotBefore.After(worst.NotBefore)) {
					worst = p
				}
			}
			if worst != nil {
				out = append(out, Violation{Request: q, Pushback: *worst})
			}
		}
	}
	slices.SortFunc(out, func(a, b Violation) int { return a.Request.Seq - b.Request.Seq })
	return out
}

// DuplicateDeliveries returns the extra deliveries of non-idempotent
// requests (POST, PATCH, ... without an Idempotency-Key; see
// Record.Idempotent): every delivery after the first of the same call. A
// call is recognized by its request ID or, without one, by its method, path
// and body hash, so give each call a distinct ID or body. Every delivery
// counts, whatever the answer: the Server cannot know whether a real upstream
// would have done the work before the reset or the 503, and a reset after
// the work is exactly what makes retried POSTs dangerous.
func DuplicateDeliveries(recs []Record) []Record {
	return repeats(recs, func(r Record) string {
		switch {
		case r.Idempotent():
			return ""
		case r.RequestID != "":
			return "id\x00" + r.RequestID
		case r.BodyHash != "":
			return bodyKey(r)
		}
		return ""
	})
}

// DuplicateProcessing returns the requests that made the Server process a
// non-idempotent call (a POST, a PATCH, ... whose method is not idempotent
// under RFC 9110 §9.2.2, key or no key) again: every processed delivery
// (Record.Processed) after the first of the same call. A call is recognized
// by its request ID or, without one, by its Idempotency-Key, or by its
// method, path and body hash. Against a Server without WithIdempotency it is
// every extra delivery, keys included, since such a server ignores them;
// against one with it, a retry that got the stored answer is no duplicate.
func DuplicateProcessing(recs []Record) []Record {
	return repeats(recs, func(r Record) string {
		switch {
		case idempotentMethod(r.Method) || !r.Processed():
			return ""
		case r.RequestID != "":
			return "id\x00" + r.RequestID
		case r.IdempotencyKey != "":
			return "key\x00" + r.Host + "\x00" + r.IdempotencyKey
		case r.BodyHash != "":
			return bodyKey(r)
		}
		return ""
	})
}

// repeats returns, in order of arrival, every record after the first of its
// call, where call names a record's call ("" for a record that is not
// counted).
func repeats(recs []Record, call func(Record) string) []Record {
	seen := map[string]bool{}
	var out []Record
	sorted := slices.Clone(recs)
	sortBySeq(sorted)
	for _, r := range sorted {
		k := call(r)
		if k == "" {
			continue
		}
		if seen[k] {
			out = append(out, r)
		}
		seen[k] = true
	}
	return out
}

// bodyKey names a call without a request ID or a key by what it sent.
func bodyKey(r Record) string {
	return "body\x00" + r.Method + "\x00" + r.Host + r.Path + "\x00" + r.BodyHash
}

// Report summarizes a Server's recording of a drill.
type Report struct {
	// Calls is the number of logical calls the client made (given to
	// Analyze); Requests the number the Server received.
	Calls, Requests int
	// Amplification is Requests / Calls.
	Amplification float64
	// Answers counts the answers by status ("200", "503", ...) or fault
	// ("reset", "hang", "canceled").
	Answers map[string]int
	// PolitenessViolations counts requests that came back before their
	// Retry-After had elapsed, grouped ByRequestID.
	PolitenessViolations int
	// DuplicateDeliveries counts extra deliveries of non-idempotent calls
	// without a key.
	DuplicateDeliveries int
	// DuplicateProcessing counts the times a non-idempotent call was
	// processed again (see DuplicateProcessing), and Replayed the requests
	// that got a stored answer instead (WithIdempotency).
	DuplicateProcessing, Replayed int
}

// Analyze summarizes recs for a drill of calls logical calls.
func Analyze(recs []Record, calls int) Report {
	rep := Report{
		Calls:                calls,
		Requests:             len(recs),
		Amplification:        Amplification(recs, calls),
		Answers:              map[string]int{},
		PolitenessViolations: len(PolitenessViolations(recs, ByRequestID)),
		DuplicateDeliveries:  len(DuplicateDeliveries(recs)),
		DuplicateProcessing:  len(DuplicateProcessing(recs)),
	}
	for _, r := range recs {
		rep.Answers[r.answer()]++
		if r.KeyOutcome == KeyReplayed {
			rep.Replayed++
		}
	}
	return rep
}

// answer names what the Server answered r with.
func (r Record) answer() string {
	switch {
	case r.Canceled:
		return "canceled"
	case r.Fault == KindReset || r.Fault == KindHang:
		return r.Fault.String()
	}
	return strconv.Itoa(r.Status)
}
