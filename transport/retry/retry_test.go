package retry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/internal/contracttest"
)

const testURL = "http://api.example.com/v1/things"

func TestStatusSequences(t *testing.T) {
	tests := []struct {
		statuses     []int
		wantAttempts int
		wantStatus   int
	}{
		{[]int{503, 503, 200}, 3, 200},
		{[]int{503, 503, 503, 503, 503}, 4, 503},
		{[]int{400}, 1, 400},
		{[]int{404}, 1, 404},
		{[]int{500}, 1, 500},
		{[]int{501}, 1, 501},
		{[]int{408, 200}, 2, 200},
		{[]int{429, 200}, 2, 200},
		{[]int{502, 504, 200}, 3, 200},
		{[]int{200}, 1, 200},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.statuses), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				base := &scripted{statuses: tt.statuses}
				rt := NewTransport(base)
				resp, err := rt.RoundTrip(mustRequest(t, context.Background(), "GET", testURL, nil))
				if err != nil {
					t.Fatalf("RoundTrip error %v; want nil", err)
				}
				if got := base.count(); got != tt.wantAttempts {
					t.Errorf("attempts = %d; want %d", got, tt.wantAttempts)
				}
				if resp.StatusCode != tt.wantStatus {
					t.Errorf("status = %d; want %d", resp.StatusCode, tt.wantStatus)
				}
				want := "attempt " + string(rune('0'+tt.wantAttempts-1))
				if got := readAll(t, resp); got != want {
					t.Errorf("body = %q; want %q (the last response, intact)", got, want)
				}
				// Every discarded response was drained and closed.
				for i, b := range base.resps[:len(base.resps)-1] {
					if eof, closed := b.state(); !eof || !closed {
						t.Errorf("discarded response %d: drained=%v closed=%v; want both", i, eof, closed)
					}
				}
				waits := base.waits()
				if got := len(waits); got != tt.wantAttempts-1 {
					t.Errorf("waits = %d; want %d", got, tt.wantAttempts-1)
				}
				for i, w := range waits {
					if w <= 0 || w > DefaultMaxBackoff {
						t.Errorf("wait %d = %v; want a backoff in (0, %v]", i, w, DefaultMaxBackoff)
					}
				}
			})
		})
	}
}

func TestAttemptNumberAndHeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var seen []int
		var hdr []string
		base := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			seen = append(seen, Attempt(r.Context()))
			hdr = append(hdr, r.Header.Get("X-Attempt"))
			code := 503
			if len(seen) == 3 {
				code = 200
			}
			return &http.Response{StatusCode: code, Body: http.NoBody}, nil
		})
		rt := NewTransport(base, WithAttemptHeader("x-attempt"))
		req := mustRequest(t, context.Background(), "GET", testURL, nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := []int{0, 1, 2}; !reflect.DeepEqual(seen, want) {
			t.Errorf("Attempt(ctx) per attempt = %v; want %v", seen, want)
		}
		if want := []string{"0", "1", "2"}; !reflect.DeepEqual(hdr, want) {
			t.Errorf("X-Attempt per attempt = %v; want %v", hdr, want)
		}
		if req.Header.Get("X-Attempt") != "" {
			t.Error("caller's request was modified")
		}
	})
}

func TestIdempotencyGate(t *testing.T) {
	tests := []struct {
		name         string
		method       string
		key          string
		opts         []Option
		wantAttempts int
		wantSameKey  bool
	}{
		{"POST without key", "POST", "", nil, 1, false},
		{"PATCH without key", "PATCH", "", nil, 1, false},
		{"POST with key", "POST", "k-123", nil, 3, true},
		{"POST WithIdempotencyKeys", "POST", "", []Option{WithIdempotencyKeys()}, 3, true},
		{"PATCH WithIdempotencyKeys", "PATCH", "", []Option{WithIdempotencyKeys()}, 3, true},
		{"custom method WithIdempotencyKeys", "PURGE", "", []Option{WithIdempotencyKeys()}, 1, false},
		{"PUT", "PUT", "", nil, 3, false},
		{"DELETE", "DELETE", "", nil, 3, false},
		{"POST via WithMethods", "POST", "", []Option{WithMethods("POST")}, 3, false},
		{"GET not in WithMethods", "GET", "", []Option{WithMethods("PUT")}, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				base := &scripted{statuses: []int{503, 503, 200}}
				rec := &contracttest.Recorder{}
				rt := NewTransport(base, tt.opts...)
				ctx := callctx.WithRecorder(context.Background(), rec)
				req := mustRequest(t, ctx, tt.method, testURL, strings.NewReader("payload"))
				if tt.key != "" {
					req.Header.Set("Idempotency-Key", tt.key)
				}
				resp, err := rt.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if got := base.count(); got != tt.wantAttempts {
					t.Fatalf("attempts = %d; want %d", got, tt.wantAttempts)
				}
				if tt.wantAttempts == 1 {
					evs := rec.Events()
					if len(evs) != 1 || evs[0].Kind != callctx.KindRetryRefused || evs[0].Reason != "not_idempotent" {
						t.Errorf("events = %+v; want one retry_refused not_idempotent", evs)
					}
				}
				if tt.wantSameKey {
					k0 := base.reqs[0].Header.Get("Idempotency-Key")
					if k0 == "" {
						t.Fatal("no Idempotency-Key sent")
					}
					for i, r := range base.reqs {
						if got := r.Header.Get("Idempotency-Key"); got != k0 {
							t.Errorf("attempt %d key = %q; want %q", i, got, k0)
						}
					}
					if tt.key == "" && req.Header.Get("Idempotency-Key") != "" {
						t.Error("caller's request was modified")
					}
				}
				for i, b := range base.bodies {
					if b != "payload" {
						t.Errorf("attempt %d body = %q; want %q", i, b, "payload")
					}
				}
			})
		})
	}
}

func TestPOSTRetriedOnlyWhenUnsent(t *testing.T) {
	dialRefused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	tests := []struct {
		name         string
		err          error
		wantAttempts int
	}{
		{"dial refused", dialRefused, 4},
		{"refused stream", errors.New("http2: stream error: stream ID 3; REFUSED_STREAM"), 4},
		{"reset after send", reset, 1},
		{"eof", io.ErrUnexpectedEOF, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := 0
				base := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
					n++
					if r.Body != nil {
						r.Body.Close()
					}
					return nil, tt.err
				})
				rt := NewTransport(base)
				_, err := rt.RoundTrip(mustRequest(t, context.Background(), "POST", testURL, strings.NewReader("x")))
				if n != tt.wantAttempts {
					t.Errorf("attempts = %d; want %d", n, tt.wantAttempts)
				}
				var re *Error
				if !errors.As(err, &re) || re.Attempts != tt.wantAttempts {
					t.Fatalf("err = %v; want *retry.Error with %d attempts", err, tt.wantAttempts)
				}
				if !errors.Is(err, tt.err) {
					t.Errorf("errors.Is(err, cause) = false for %v", err)
				}
			})
		})
	}
}

func TestErrorClasses(t *testing.T) {
	timeoutErr := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	tests := []struct {
		name         string
		err          error
		wantAttempts int
		wantReason   string
		wantStop     error
	}{
		{"timeout", timeoutErr, 4, "timeout", ErrAttempts},
		{"reset", syscall.ECONNRESET, 4, "connection_reset", ErrAttempts},
		{"refused", syscall.ECONNREFUSED, 4, "connection_refused", ErrAttempts},
		{"eof", io.EOF, 4, "eof", ErrAttempts},
		{"goaway", errors.New("http2: server sent GOAWAY and closed the connection"), 4, "http2_goaway", ErrAttempts},
		{"refused stream", errors.New("stream error: stream ID 1; REFUSED_STREAM"), 4, "http2_refused_stream", ErrAttempts},
		{"other", errors.New("x509: certificate signed by unknown authority"), 1, "", nil},
		{"broken connection", errors.New("net/http: HTTP/1.x transport connection broken: read: connection closed"), 4, "eof", ErrAttempts},
		{"headers too large", errors.New("net/http: HTTP/1.x transport connection broken: net/http: server response headers exceeded 1048576 bytes; aborted"), 1, "", nil},
		{"malformed response", errors.New(`net/http: HTTP/1.x transport connection broken: malformed HTTP response "garbage"`), 1, "", nil},
		{"bad framing", errors.New(`net/http: HTTP/1.x transport connection broken: http: message cannot contain multiple Content-Length headers; got ["5" "6"]`), 1, "", nil},
		{"local refusal", openCircuit{}, 1, "", nil},
		{"wrapped local refusal", fmt.Errorf("circuit: %w", openCircuit{}), 1, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := 0
				base := contracttest.RoundTripFunc(func(*http.Request) (*http.Response, error) { n++; return nil, tt.err })
				var reasons []string
				rt := NewTransport(base,
					WithOnRetry(func(ri RetryInfo) { reasons = append(reasons, ri.Reason) }))
				resp, err := rt.RoundTrip(mustRequest(t, context.Background(), "GET", testURL, nil))
				if resp != nil {
					t.Fatal("response together with an error")
				}
				if n != tt.wantAttempts {
					t.Errorf("attempts = %d; want %d", n, tt.wantAttempts)
				}
				var re *Error
				if !errors.As(err, &re) {
					t.Fatalf("err = %T; want *retry.Error", err)
				}
				if re.Attempts != tt.wantAttempts || re.Stop != tt.wantStop {
					t.Errorf("Error = %+v; want Attempts %d Stop %v", re, tt.wantAttempts, tt.wantStop)
				}
				if !errors.Is(err, tt.err) {
					t.Error("errors.Is does not reach the cause")
				}
				if tt.wantStop != nil && !errors.Is(err, tt.wantStop) {
					t.Errorf("errors.Is(err, %v) = false", tt.wantStop)
				}
				if tt.wantReason != "" && (len(reasons) == 0 || reasons[0] != tt.wantReason) {
					t.Errorf("reasons = %v; want %q", reasons, tt.wantReason)
				}
			})
		})
	}
}

type openCircuit struct{}

func (openCircuit) Error() string      { return "circuit: open" }
func (openCircuit) LocalRefusal() bool { return true }

func TestErrorTimeoutFlag(t *testing.T) {
	e := &Error{Attempts: 2, Err: &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, Stop: ErrAttempts}
	if !e.Timeout() {
		t.Error("Timeout() = false for a timeout cause")
	}
	if got, want := e.Error(), "retry: 2 attempts (attempts exhausted): read: i/o timeout"; got != want {
		t.Errorf("Error() = %q; want %q", got, want)
	}
	if (&Error{Attempts: 1, Err: io.EOF}).Timeout() {
		t.Error("Timeout() = true for EOF")
	}
}

func TestBodies(t *testing.T) {
	t.Run("GetBody gives each attempt identical bytes", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			base := &scripted{statuses: []int{503, 503, 200}}
			rt := NewTransport(base)
			payload := strings.Repeat("abc", 1000)
			req := mustRequest(t, context.Background(), "PUT", testURL, strings.NewReader(payload))
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if base.count() != 3 {
				t.Fatalf("attempts = %d; want 3", base.count())
			}
			for i, b := range base.bodies {
				if b != payload {
					t.Errorf("attempt %d body has %d bytes; want the %d-byte payload", i, len(b), len(payload))
				}
			}
			// Every attempt got a distinct reader: none reads a body another consumed.
			if base.reqs[0].Body == base.reqs[1].Body {
				t.Error("attempts 0 and 1 share one body")
			}
		})
	})
	t.Run("no GetBody: sent once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			base := &scripted{statuses: []int{503, 200}}
			var refused string
			rt := NewTransport(base, WithOnRetry(func(ri RetryInfo) { refused = ri.Refused }))
			req := mustRequest(t, context.Background(), "PUT", testURL, noGetBody{strings.NewReader("once")})
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if base.count() != 1 || resp.StatusCode != 503 || refused != "body_not_rewindable" {
				t.Errorf("attempts %d status %d refused %q; want 1, 503, body_not_rewindable", base.count(), resp.StatusCode, refused)
			}
		})
	})
	t.Run("GetBody failing stops retries", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			base := &scripted{statuses: []int{503, 200}}
			rt := NewTransport(base)
			req := mustRequest(t, context.Background(), "PUT", testURL, strings.NewReader("x"))
			req.GetBody = func() (io.ReadCloser, error) { return nil, errors.New("gone") }
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if base.count() != 1 || resp.StatusCode != 503 {
				t.Errorf("attempts %d status %d; want 1 and 503", base.count(), resp.StatusCode)
			}
		})
	})
	t.Run("WithBufferBodies small body retried", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			base := &scripted{statuses: []int{503, 503, 200}}
			rt := NewTransport(base, WithBufferBodies(10))
			orig := newTrackBody("0123456789")
			req := mustRequest(t, context.Background(), "PUT", testURL, nil)
			req.Body = orig
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if base.count() != 3 {
				t.Fatalf("attempts = %d; want 3", base.count())
			}
			for i, b := range base.bodies {
				if b != "0123456789" {
					t.Errorf("attempt %d body = %q", i, b)
				}
			}
			if _, closed := orig.state(); !closed {
				t.Error("caller's body not closed")
			}
		})
	})
	t.Run("WithBufferBodies large body sent once, whole", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			base := &scripted{statuses: []int{503, 200}}
			rt := NewTransport(base, WithBufferBodies(4))
			req := mustRequest(t, context.Background(), "PUT", testURL, nil)
			req.Body = noGetBody{strings.NewReader("0123456789")}
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if base.count() != 1 || base.bodies[0] != "0123456789" {
				t.Errorf("attempts %d body %q; want 1 and the whole body", base.count(), base.bodies[0])
			}
		})
	})
	t.Run("WithBufferBodies read error closes body", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			base := &scripted{statuses: []int{200}}
			rt := NewTransport(base, WithBufferBodies(100))
			tb := &trackBody{r: io.MultiReader(strings.NewReader("ab"), errReader{})}
			req := mustRequest(t, context.Background(), "PUT", testURL, nil)
			req.Body = tb
			resp, err := rt.RoundTrip(req)
			if resp != nil || err == nil || base.count() != 0 {
				t.Fatalf("resp %v err %v attempts %d; want an error and no attempt", resp, err, base.count())
			}
			if _, closed := tb.state(); !closed {
				t.Error("request body not closed on the error path")
			}
		})
	})
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestEqualJitter(t *testing.T) {
	maxRand := func(n int64) int64 { return n - 1 }
	initial, max := 200*time.Millisecond, 3*time.Second
	want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3 * time.Second, 3 * time.Second}
	for n, w := range want {
		if got := equalJitter(initial, max, n, maxRand); got != w {
			t.Errorf("ceiling for retry %d = %v; want %v", n, got, w)
		}
		if got := equalJitter(initial, max, n, func(int64) int64 { return 0 }); got != w/2 {
			t.Errorf("floor for retry %d = %v; want %v, half the ceiling", n, got, w/2)
		}
	}
	if got := equalJitter(initial, max, 100, maxRand); got != max {
		t.Errorf("retry 100 = %v; want %v (no overflow)", got, max)
	}
	// Real randomness stays inside the bounds and is spread out.
	seen := map[time.Duration]bool{}
	for i := 0; i < 1000; i++ {
		d := equalJitter(initial, max, 2, defaultConfig().randN)
		if d < 400*time.Millisecond || d > 800*time.Millisecond {
			t.Fatalf("draw %v outside [400ms, 800ms]", d)
		}
		seen[d/(100*time.Millisecond)] = true
	}
	if len(seen) < 4 {
		t.Errorf("draws fell in %d of the 4 bands of [400ms, 800ms); want all (jitter not uniform?)", len(seen))
	}
}

func TestBackoffWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := &scripted{statuses: []int{503, 503, 503, 503}}
		rt := NewTransport(base, WithRand(func(n int64) int64 { return n - 1 }),
			WithBackoff(100*time.Millisecond, 250*time.Millisecond))
		resp, err := rt.RoundTrip(mustRequest(t, context.Background(), "GET", testURL, nil))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 250 * time.Millisecond}
		if got := base.waits(); !reflect.DeepEqual(got, want) {
			t.Errorf("waits = %v; want %v", got, want)
		}
	})
}

func TestPushback(t *testing.T) {
	// Each subtest's bubble first moves its clock to epoch, a time whose
	// Unix seconds read as an epoch in X-RateLimit-Reset (a bubble starts in
	// January 2000, below that threshold), so the table can use it.
	epoch := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	date := epoch.Add(7 * time.Second).Format(http.TimeFormat)
	tests := []struct {
		name string
		h    http.Header
		opts []Option
		want time.Duration
	}{
		{"Retry-After seconds", http.Header{"Retry-After": {"2"}}, nil, 2 * time.Second},
		{"Retry-After date", http.Header{"Retry-After": {date}}, nil, 7 * time.Second},
		{"Retry-After garbage falls back to backoff", http.Header{"Retry-After": {"soon"}}, nil, 200 * time.Millisecond},
		{"Retry-After negative falls back to backoff", http.Header{"Retry-After": {"-5"}}, nil, 200 * time.Millisecond},
		{"Retry-After shorter than backoff", http.Header{"Retry-After": {"0"}}, nil, 200 * time.Millisecond},
		{"RateLimit-Reset", http.Header{"Ratelimit-Reset": {"4"}}, nil, 4 * time.Second},
		{"X-RateLimit-Reset epoch", http.Header{"X-Ratelimit-Reset": {fmt.Sprint(epoch.Unix() + 9)}}, nil, 9 * time.Second},
		{"capped", http.Header{"Retry-After": {"3600"}}, nil, 30 * time.Second},
		{"capped by option", http.Header{"Retry-After": {"3600"}}, []Option{WithMaxRetryAfter(5 * time.Second)}, 5 * time.Second},
		// The cap bounds the pushback, never the backoff: 0 ignores Retry-After
		// and still waits the backoff.
		{"zero cap ignores Retry-After, keeps backoff", http.Header{"Retry-After": {"3600"}}, []Option{WithMaxRetryAfter(0)}, 200 * time.Millisecond},
		{"cap below backoff keeps backoff", http.Header{"Retry-After": {"3600"}}, []Option{WithMaxRetryAfter(50 * time.Millisecond)}, 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				time.Sleep(time.Until(epoch))
				base := &scripted{statuses: []int{429, 200}, headers: []http.Header{tt.h}}
				opts := append([]Option{WithRand(func(n int64) int64 { return n - 1 })}, tt.opts...)
				rt := NewTransport(base, opts...)
				resp, err := rt.RoundTrip(mustRequest(t, context.Background(), "GET", testURL, nil))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if got := base.waits(); len(got) != 1 || got[0] != tt.want {
					t.Errorf("waits = %v; want [%v]", got, tt.want)
				}
			})
		})
	}
}

func TestWaitPastDeadlineReturnsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := &scripted{statuses: []int{429, 200}, headers: []http.Header{{"Retry-After": {"3600"}}}}
		rec := &contracttest.Recorder{}
		rt := NewTransport(base)
		ctx, cancel := context.WithTimeout(callctx.WithRecorder(context.Background(), rec), 10*time.Second)
		defer cancel()
		start := time.Now()
		resp, err := rt.RoundTrip(mustRequest(t, ctx, "GET", testURL, nil))
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, resp); resp.StatusCode != 429 || got != "attempt 0" {
			t.Errorf("got %d %q; want the 429 itself", resp.StatusCode, got)
		}
		if el := time.Since(start); el != 0 || base.count() != 1 {
			t.Errorf("elapsed=%v attempts=%d; want no wait (0 on the bubble's clock), 1 attempt", el, base.count())
		}
		evs := rec.Events()
		if len(evs) != 1 || evs[0].Kind != callctx.KindRetryRefused || evs[0].Reason != "deadline" || evs[0].Attempt != 0 {
			t.Errorf("events = %+v; want one retry_refused deadline for attempt 0", evs)
		}
	})
}

func TestDeadlineWithErrorReturnsTypedError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := contracttest.RoundTripFunc(func(*http.Request) (*http.Response, error) { return nil, syscall.ECONNRESET })
		rt := NewTransport(base, WithBackoff(time.Hour, time.Hour), WithRand(func(n int64) int64 { return n - 1 }),
			WithMaxRetryAfter(time.Hour))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := rt.RoundTrip(mustRequest(t, ctx, "GET", testURL, nil))
		if !errors.Is(err, ErrDeadline) || !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("err = %v; want ErrDeadline wrapping ECONNRESET", err)
		}
	})
}

func TestCancelDuringWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := &scripted{statuses: []int{503}, headers: []http.Header{{"Retry-After": {"20"}}}}
		rt := NewTransport(base)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(30*time.Millisecond, cancel)
		start := time.Now()
		resp, err := rt.RoundTrip(mustRequest(t, ctx, "GET", testURL, nil))
		if resp != nil {
			t.Fatal("got a response; want an error")
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v; want context.Canceled", err)
		}
		if el := time.Since(start); el != 30*time.Millisecond {
			t.Errorf("returned after %v; want 30ms, when the caller canceled", el)
		}
		if eof, closed := base.resps[0].state(); !eof || !closed {
			t.Error("discarded response not drained and closed")
		}
	})
}

func TestCancelCauseKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := &scripted{statuses: []int{503}, headers: []http.Header{{"Retry-After": {"20"}}}}
		rt := NewTransport(base)
		cause := errors.New("budget: exhausted")
		ctx, cancel := context.WithCancelCause(context.Background())
		time.AfterFunc(10*time.Millisecond, func() { cancel(cause) })
		_, err := rt.RoundTrip(mustRequest(t, ctx, "GET", testURL, nil))
		if !errors.Is(err, context.Canceled) || !errors.Is(err, cause) {
			t.Errorf("err = %v; want both context.Canceled and the cause", err)
		}
	})
}

func TestNoRetryAfterCallerDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		n := 0
		base := contracttest.RoundTripFunc(func(*http.Request) (*http.Response, error) {
			n++
			cancel()
			return nil, context.Canceled
		})
		_, err := NewTransport(base).RoundTrip(mustRequest(t, ctx, "GET", testURL, nil))
		if n != 1 || !errors.Is(err, context.Canceled) {
			t.Errorf("attempts %d err %v; want 1 and context.Canceled", n, err)
		}
	})
}

func TestEventsAndOnRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := &scripted{statuses: []int{503, 502, 503, 503}}
		rec := &contracttest.Recorder{}
		var infos []RetryInfo
		rt := NewTransport(base, WithRand(func(n int64) int64 { return n - 1 }),
			WithOnRetry(func(ri RetryInfo) { infos = append(infos, ri) }))
		req := mustRequest(t, callctx.WithRecorder(context.Background(), rec), "GET", testURL, nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		key := "http://api.example.com:80"
		want := []callctx.Event{
			{Kind: callctx.KindRetry, Attempt: 1, Delay: 200 * time.Millisecond, Reason: "status_503", Key: key},
			{Kind: callctx.KindRetry, Attempt: 2, Delay: 400 * time.Millisecond, Reason: "status_502", Key: key},
			{Kind: callctx.KindRetry, Attempt: 3, Delay: 800 * time.Millisecond, Reason: "status_503", Key: key},
			{Kind: callctx.KindRetryRefused, Attempt: 3, Reason: "attempts", Key: key},
		}
		if got := rec.Events(); !reflect.DeepEqual(got, want) {
			t.Errorf("events:\n got %+v\nwant %+v", got, want)
		}
		if len(infos) != 4 || infos[0].Attempt != 0 || infos[0].StatusCode != 503 || infos[0].Request != req ||
			infos[3].Refused != "attempts" || infos[2].Refused != "" {
			t.Errorf("RetryInfo = %+v", infos)
		}
	})
}

func TestBudgetRefusal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := &scripted{statuses: []int{503}}
		var refused []string
		rt := NewTransport(base, WithRetryBudget(0, 10*time.Second, 0),
			WithOnRetry(func(ri RetryInfo) { refused = append(refused, ri.Refused) }))
		resp, err := rt.RoundTrip(mustRequest(t, context.Background(), "GET", testURL, nil))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if base.count() != 1 || !reflect.DeepEqual(refused, []string{"budget"}) {
			t.Errorf("attempts %d refused %v; want 1 and [budget]", base.count(), refused)
		}
		// Errors stop with ErrBudget.
		rt = NewTransport(contracttest.RoundTripFunc(func(*http.Request) (*http.Response, error) { return nil, io.EOF }),
			WithRetryBudget(0, 10*time.Second, 0))
		if _, err := rt.RoundTrip(mustRequest(t, context.Background(), "GET", testURL, nil)); !errors.Is(err, ErrBudget) {
			t.Errorf("err = %v; want ErrBudget", err)
		}
		// WithoutRetryBudget: every attempt.
		base = &scripted{statuses: []int{503}}
		rt = NewTransport(base, WithRetryBudget(0, 10*time.Second, 0), WithoutRetryBudget())
		resp, _ = rt.RoundTrip(mustRequest(t, context.Background(), "GET", testURL, nil))
		resp.Body.Close()
		if base.count() != 4 {
			t.Errorf("WithoutRetryBudget: attempts %d; want 4", base.count())
		}
	})
}

func TestRetryBudgetWindow(t *testing.T) {
	c := defaultConfig() // 20 %, 10 s, 3/s → floor 30
	b := newRetryBudget(&c)
	now := time.Unix(1_700_000_000, 0)
	for i := 0; i < 100; i++ {
		b.request(now)
	}
	got := 0
	for b.withdraw(now) {
		got++
	}
	if got != 50 { // 20 + 30
		t.Errorf("retries allowed for 100 requests = %d; want 50", got)
	}
	// Half a window later, everything is still counted.
	if b.withdraw(now.Add(5 * time.Second)) {
		t.Error("retry allowed mid-window after the budget was spent")
	}
	// A full window later the old buckets have aged out: only the floor is left.
	later := now.Add(10 * time.Second)
	got = 0
	for b.withdraw(later) {
		got++
	}
	if got != 30 {
		t.Errorf("retries after the window = %d; want the floor 30", got)
	}
	// Ratio only: 1000 requests → 200 retries.
	c.minPerSecond = 0
	b = newRetryBudget(&c)
	for i := 0; i < 1000; i++ {
		b.request(now.Add(time.Duration(i) * time.Millisecond))
	}
	got = 0
	for b.withdraw(now.Add(time.Second)) {
		got++
	}
	if got != 200 {
		t.Errorf("retries for 1000 requests at 20%% = %d; want 200", got)
	}
}

func TestBudgetPerUpstreamAndBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := &scripted{statuses: []int{503}}
		rt := NewTransport(base, WithRetryBudget(0, time.Second, 1), WithMaxKeys(2)) // floor: 1 retry
		for _, host := range []string{"a", "b", "c", "a"} {
			resp, err := rt.RoundTrip(mustRequest(t, context.Background(), "GET", "http://"+host+"/", nil))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		// a: 2 attempts; b: 2; c: 2; a again after eviction: fresh budget, 2.
		if base.count() != 8 {
			t.Errorf("attempts = %d; want 8 (one retry per upstream, a forgotten and fresh again)", base.count())
		}
		if rt.budgets.Len() != 2 {
			t.Errorf("keys kept = %d; want 2", rt.budgets.Len())
		}
	})
}

func TestAttemptTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var first, last context.Context
		n := 0
		base := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			n++
			if n == 1 {
				first = r.Context()
				<-r.Context().Done() // hang until the attempt's deadline
				return nil, r.Context().Err()
			}
			last = r.Context()
			return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("late body"))}, nil
		})
		var reasons []string
		rt := NewTransport(base, WithAttemptTimeout(20*time.Millisecond), WithBackoff(0, 0),
			WithOnRetry(func(ri RetryInfo) { reasons = append(reasons, ri.Reason) }))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := rt.RoundTrip(mustRequest(t, ctx, "GET", testURL, nil))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(reasons, []string{"timeout"}) {
			t.Errorf("reasons = %v; want [timeout]", reasons)
		}
		if cause := context.Cause(first); !errors.Is(cause, callctx.ErrAttemptTimeout) {
			t.Errorf("first attempt's cause = %v; want callctx.ErrAttemptTimeout", cause)
		}
		if last.Err() != nil {
			t.Fatal("attempt context canceled before the body was read")
		}
		if dl, ok := last.Deadline(); !ok || time.Until(dl) > 20*time.Millisecond {
			t.Errorf("attempt deadline = %v, %v; want within 20ms", dl, ok)
		}
		if got := readAll(t, resp); got != "late body" {
			t.Errorf("body = %q", got)
		}
		if last.Err() != context.Canceled {
			t.Errorf("after Close, attempt ctx err = %v; want context.Canceled (timer released)", last.Err())
		}
	})
}

func TestCallerDeadlineSoonerThanAttemptTimeoutNotRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := 0
		base := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			n++
			<-r.Context().Done()
			return nil, r.Context().Err()
		})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		_, err := NewTransport(base, WithAttemptTimeout(time.Hour)).RoundTrip(mustRequest(t, ctx, "GET", testURL, nil))
		if n != 1 || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("attempts %d err %v; want 1 and DeadlineExceeded (the caller's deadline is not retried)", n, err)
		}
	})
}

func TestAttemptTimeoutCappedByCaller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var dl time.Time
		base := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			dl, _ = r.Context().Deadline()
			return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
		})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		want, _ := ctx.Deadline()
		resp, err := NewTransport(base, WithAttemptTimeout(time.Hour)).RoundTrip(mustRequest(t, ctx, "GET", testURL, nil))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if !dl.Equal(want) {
			t.Errorf("attempt deadline %v; want the caller's %v", dl, want)
		}
	})
}

func TestRetryablehttpPolicies(t *testing.T) {
	t.Run("DefaultRetryPolicy retries 500, DefaultBackoff waits", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			base := &scripted{statuses: []int{500, 500, 200}}
			rt := NewTransport(base, WithCheckRetry(retryablehttp.DefaultRetryPolicy),
				WithBackoffFunc(retryablehttp.DefaultBackoff))
			resp, err := rt.RoundTrip(mustRequest(t, context.Background(), "GET", testURL, nil))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || base.count() != 3 {
				t.Errorf("status %d attempts %d; want 200 after 3", resp.StatusCode, base.count())
			}
			want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond}
			if got := base.waits(); !reflect.DeepEqual(got, want) {
				t.Errorf("waits = %v; want %v (min·2^n)", got, want)
			}
		})
	})
	t.Run("idempotency gate still blocks POST", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			base := &scripted{statuses: []int{503, 200}}
			rt := NewTransport(base, WithCheckRetry(retryablehttp.DefaultRetryPolicy))
			resp, err := rt.RoundTrip(mustRequest(t, context.Background(), "POST", testURL, strings.NewReader("x")))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if base.count() != 1 || resp.StatusCode != 503 {
				t.Errorf("attempts %d status %d; want one POST and its 503", base.count(), resp.StatusCode)
			}
		})
	})
	t.Run("LocalRefusal still not retried", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			n := 0
			base := contracttest.RoundTripFunc(func(*http.Request) (*http.Response, error) { n++; return nil, openCircuit{} })
			rt := NewTransport(base, WithCheckRetry(retryablehttp.DefaultRetryPolicy))
			if _, err := rt.RoundTrip(mustRequest(t, context.Background(), "GET", testURL, nil)); err == nil || n != 1 {
				t.Errorf("attempts %d err %v; want 1 and an error", n, err)
			}
		})
	})
}

// The contract suite (contract_test.go) checks the rest of the RoundTripper
// contract: a broken next, bodies closed on every path, discarded bodies
// drained, CloseIdleConnections forwarded and never called.
func TestCallerRequestNotModified(t *testing.T) {
	t.Run("POST with an idempotency key, attempt header and timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			base := &scripted{statuses: []int{503, 503, 200}}
			rt := NewTransport(base, WithAttemptHeader("X-Attempt"),
				WithIdempotencyKeys(), WithAttemptTimeout(time.Second))
			req := mustRequest(t, context.Background(), "POST", testURL, strings.NewReader("body"))
			req.Header.Set("A", "1")
			ctx, body, getBody, u := req.Context(), req.Body, req.GetBody, *req.URL
			hdr := req.Header.Clone()
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if req.Context() != ctx || req.Body != body || reflect.ValueOf(req.GetBody).Pointer() != reflect.ValueOf(getBody).Pointer() ||
				*req.URL != u || !reflect.DeepEqual(req.Header, hdr) || req.Method != "POST" {
				t.Error("caller's request was modified")
			}
			for i, r := range base.reqs {
				if r == req {
					t.Errorf("attempt %d sent the caller's request itself", i)
				}
			}
		})
	})
}

func TestOptionPanics(t *testing.T) {
	tests := []struct {
		name string
		f    func()
		want string
	}{
		{"attempts", func() { WithMaxAttempts(0) }, "retry: WithMaxAttempts(0): n must be at least 1"},
		{"backoff", func() { WithBackoff(time.Second, time.Millisecond) }, "retry: WithBackoff(1s, 1ms)"},
		{"attempt timeout", func() { WithAttemptTimeout(0) }, "retry: WithAttemptTimeout(0s)"},
		{"status", func() { WithStatuses(99) }, "retry: WithStatuses(99)"},
		{"budget", func() { WithRetryBudget(-1, time.Second, 0) }, "retry: WithRetryBudget(-1, 1s, 0)"},
		{"budget window", func() { WithRetryBudget(0.1, 0, 0) }, "retry: WithRetryBudget(0.1, 0s, 0)"},
		{"retry-after", func() { WithMaxRetryAfter(-1) }, "retry: WithMaxRetryAfter(-1ns)"},
		{"buffer", func() { WithBufferBodies(0) }, "retry: WithBufferBodies(0)"},
		{"header", func() { WithAttemptHeader("") }, "retry: WithAttemptHeader"},
		{"header with a space", func() { WithAttemptHeader("X Attempt") }, "retry: WithAttemptHeader(\"X Attempt\")"},
		{"keys", func() { WithMaxKeys(0) }, "retry: WithMaxKeys(0)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if s, _ := r.(string); !strings.HasPrefix(s, tt.want) {
					t.Errorf("panic %v; want prefix %q", r, tt.want)
				}
			}()
			tt.f()
		})
	}
}

func TestWithStatusesAndKeyFunc(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := &scripted{statuses: []int{500, 503, 200}}
		var keys []string
		rt := NewTransport(base, WithStatuses(500),
			WithKey(func(*http.Request) string { return "tenant-1" }),
			WithOnRetry(func(ri RetryInfo) { keys = append(keys, ri.Key) }))
		resp, err := rt.RoundTrip(mustRequest(t, context.Background(), "GET", testURL, nil))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 || base.count() != 2 || !reflect.DeepEqual(keys, []string{"tenant-1"}) {
			t.Errorf("status %d attempts %d keys %v; want 503 after 2 (only 500 retried), key tenant-1", resp.StatusCode, base.count(), keys)
		}
	})
}

func TestMiddleware(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := &scripted{statuses: []int{503, 200}}
		rt := Middleware()(base)
		resp, err := rt.RoundTrip(mustRequest(t, context.Background(), "GET", testURL, nil))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("status %d; want 200", resp.StatusCode)
		}
		_ = bytes.MinRead
	})
}

type refusedBelow struct{}

func (refusedBelow) Error() string      { return "circuit: breaker open" }
func (refusedBelow) LocalRefusal() bool { return true }

// When the next attempt is refused by a layer below (breaker, limiter), the
// caller gets the previous attempt's response, body intact, not the refusal.
func TestRefusedRetryReturnsLastResponse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		base := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			calls++
			if calls == 1 {
				return &http.Response{StatusCode: 503, Header: http.Header{}, Request: r,
					Body: io.NopCloser(strings.NewReader("upstream busy"))}, nil
			}
			return nil, refusedBelow{}
		})
		rt := NewTransport(base)
		resp, err := rt.RoundTrip(mustRequest(t, context.Background(), "GET", testURL, nil))
		if err != nil {
			t.Fatalf("err = %v; want the last 503", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 503 || string(b) != "upstream busy" || calls != 2 {
			t.Fatalf("got %d %q after %d attempts; want 503 \"upstream busy\" after 2", resp.StatusCode, b, calls)
		}
	})
}

// Nested retry layers: the inner layer's first attempt reads as attempt 0,
// not as the outer layer's attempt number.
func TestNestedAttemptNumbers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var seen []int
		base := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			seen = append(seen, Attempt(r.Context()))
			return &http.Response{StatusCode: 503, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
		})
		inner := NewTransport(base, WithMaxAttempts(1))
		outer := NewTransport(inner, WithMaxAttempts(3), WithoutRetryBudget())
		resp, err := outer.RoundTrip(mustRequest(t, context.Background(), "GET", testURL, nil))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if fmt.Sprint(seen) != "[0 0 0]" {
			t.Fatalf("inner attempts read %v; want [0 0 0]", seen)
		}
	})
}

// TestBufferedBodyAttemptClock: a body read into memory before the first
// attempt (WithBufferBodies) takes the upload's time, so the layers below
// must not take the call's earlier clock reading (callctx.Now) for the
// attempt's start: a hedge layer would measure its delay from before the
// upload and hedge too soon.
func TestBufferedBodyAttemptClock(t *testing.T) {
	for _, buffered := range []bool{false, true} {
		var readDone, seen time.Time
		next := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			seen = callctx.Now(r.Context())
			io.Copy(io.Discard, r.Body)
			r.Body.Close()
			return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
		})
		opts := []Option{}
		if buffered {
			opts = append(opts, WithBufferBodies(64))
		}
		rt := NewTransport(next, opts...)
		// The call's reading, as a deadline layer above took it a minute
		// before the body was uploaded.
		then := time.Now().Add(-time.Minute)
		call := callctx.NewCall(context.Background())
		call.SetDeadline(then, then.Add(time.Hour), nil)
		body := &clockedBody{Reader: strings.NewReader("payload"), done: &readDone}
		req := mustRequest(t, call, "PUT", testURL, nil)
		req.Body = body
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		switch {
		case buffered && seen.Before(readDone):
			t.Errorf("buffered: the attempt's start %v is before the body was read at %v", seen, readDone)
		case !buffered && !seen.Equal(then):
			t.Errorf("streamed: the attempt's start %v; want the call's reading %v, shared", seen, then)
		}
	}
}

// clockedBody records when it was read to EOF.
type clockedBody struct {
	io.Reader
	done *time.Time
}

func (b *clockedBody) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	if err == io.EOF && b.done.IsZero() {
		*b.done = time.Now()
	}
	return n, err
}

func (b *clockedBody) Close() error { return nil }
