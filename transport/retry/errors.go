package retry

import (
	"errors"
	"strconv"
	"strings"
)

// Sentinels saying why no further attempt was made. A *Error matches the one
// that applies through errors.Is, so callers can branch on it:
//
//	if errors.Is(err, retry.ErrBudget) { ... }
//
// A response is never turned into an error: when retrying stops after a
// response, that response is returned with a nil error and these sentinels
// reach the caller only through RetryInfo and the call's events.
var (
	// ErrAttempts: every attempt allowed by WithMaxAttempts failed.
	ErrAttempts = errors.New("retry: attempts exhausted")
	// ErrBudget: the retry budget of the upstream was spent (see WithRetryBudget).
	ErrBudget = errors.New("retry: retry budget spent")
	// ErrDeadline: the wait before the next attempt would have ended after the
	// deadline of the request context, so it was not started.
	ErrDeadline = errors.New("retry: wait would pass the deadline")
	// ErrNotIdempotent: the request may have reached the server and its method
	// is not idempotent (RFC 9110 §9.2.2) and it carries no Idempotency-Key.
	ErrNotIdempotent = errors.New("retry: request is not idempotent")
	// ErrBodyNotRewindable: the request body cannot be sent again (no GetBody,
	// or a body larger than the WithBufferBodies limit, or GetBody failed).
	ErrBodyNotRewindable = errors.New("retry: request body cannot be rewound")
)

// Error is the error returned when no attempt obtained a response. Err is the
// error of the last attempt (or the context's error when the caller's context
// ended during a wait); errors.Is and errors.As reach it, and through it
// context.Canceled, context.DeadlineExceeded and the errors of the layers
// below. Stop, when not nil, is the sentinel saying why no further attempt was
// made (ErrAttempts, ErrBudget, ...); errors.Is matches it too. Stop is nil when
// the last error was not retryable at all.
type Error struct {
	Attempts int   // attempts sent, counting the first
	Err      error // error of the last attempt
	Stop     error // why retrying stopped; nil if Err was not retryable
}

// Error returns "retry: <attempts> attempt(s): <err>", with the stop reason
// when there is one.
func (e *Error) Error() string {
	s := "retry: " + strconv.Itoa(e.Attempts) + " attempt"
	if e.Attempts != 1 {
		s += "s"
	}
	if e.Stop != nil {
		s += " (" + strings.TrimPrefix(e.Stop.Error(), "retry: ") + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns Err, the last attempt's error.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the Stop sentinel; errors.Is then goes on to Err.
func (e *Error) Is(target error) bool { return e.Stop != nil && target == e.Stop }

// Timeout reports whether the last error was a timeout. *url.Error.Timeout
// checks its direct cause with a type assertion rather than errors.As, so
// without this method http.Client callers would lose the timeout flag.
func (e *Error) Timeout() bool {
	var t interface{ Timeout() bool }
	return errors.As(e.Err, &t) && t.Timeout()
}
