package hardening_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/outboundhttp/outbound/transport/requestid"
)

// bodyFault is what the flaky upstream of TestBodiesNeverLost does with one
// attempt.
type bodyFault int

const (
	faultOK              bodyFault = iota // 200 with the SHA-256 of the body it read
	fault503                              // read the body, answer 503
	fault429                              // read the body, answer 429 with Retry-After: 0
	faultResetBeforeRead                  // RST before reading any of the body
	faultResetMidBody                     // read half the body, then RST
	faultResetAfterRead                   // read all of it, then RST: processed, no answer
	faultCloseAfterRead                   // read all of it, then FIN: processed, no answer
	numBodyFaults
)

var bodyFaultNames = [numBodyFaults]string{"ok", "503", "429", "reset-before-read", "reset-mid-body", "reset-after-read", "close-after-read"}

// delivery is one attempt as the upstream saw it.
type delivery struct {
	method, idemKey string
	fault           bodyFault
	body            []byte
	complete        bool // the whole body was read (it hit EOF)
}

// bodyUpstream is a loopback upstream that applies a seeded random fault to
// each attempt, in order of arrival, and records what it received, by
// request ID.
type bodyUpstream struct {
	srv  *httptest.Server
	mu   sync.Mutex
	rng  *rand.Rand
	got  map[string][]delivery
	seen [numBodyFaults]int
}

func newBodyUpstream(seed uint64) *bodyUpstream {
	u := &bodyUpstream{rng: rand.New(rand.NewPCG(seed, 0xb0d1e5)), got: map[string][]delivery{}}
	u.srv = httptest.NewUnstartedServer(u)
	u.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	u.srv.Start()
	return u
}

func (u *bodyUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	// Half the attempts fail, the failures spread evenly over the kinds.
	f := faultOK
	if u.rng.IntN(2) == 0 {
		f = bodyFault(1 + u.rng.IntN(int(numBodyFaults)-1))
	}
	u.seen[f]++
	u.mu.Unlock()

	d := delivery{method: r.Method, idemKey: r.Header.Get("Idempotency-Key"), fault: f}
	switch f {
	case faultResetBeforeRead:
	case faultResetMidBody:
		half := r.ContentLength / 2
		if r.ContentLength < 0 {
			half = 1000
		}
		d.body, _ = io.ReadAll(io.LimitReader(r.Body, half))
	default:
		b, err := io.ReadAll(r.Body)
		d.body, d.complete = b, err == nil
	}
	id := r.Header.Get("X-Request-ID")
	u.mu.Lock()
	u.got[id] = append(u.got[id], d)
	u.mu.Unlock()

	switch f {
	case faultOK:
		sum := sha256.Sum256(d.body)
		io.WriteString(w, hex.EncodeToString(sum[:]))
	case fault503:
		w.WriteHeader(http.StatusServiceUnavailable)
	case fault429:
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusTooManyRequests)
	case faultResetBeforeRead, faultResetMidBody, faultResetAfterRead:
		if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
			reset(c)
		}
	case faultCloseAfterRead:
		if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
			c.Close()
		}
	}
}

func (u *bodyUpstream) deliveries(id string) []delivery {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.got[id]
}

// bodyCall is one logical call of the property test.
type bodyCall struct {
	method     string
	idemKey    bool
	rewindable bool // GetBody set
	chunked    bool // length unknown (ContentLength -1)
	body       []byte
}

func (c bodyCall) String() string {
	return fmt.Sprintf("%s len=%d key=%v rewindable=%v chunked=%v", c.method, len(c.body), c.idemKey, c.rewindable, c.chunked)
}

func randomCall(r *rand.Rand) bodyCall {
	c := bodyCall{method: []string{http.MethodPut, http.MethodPost, http.MethodPost}[r.IntN(3)]}
	c.idemKey = c.method == http.MethodPost && r.IntN(3) == 0
	c.rewindable = r.IntN(5) != 0
	c.chunked = r.IntN(4) == 0
	size := []int{0, 1, 100, 4 << 10, 64<<10 + 3, 300 << 10}[r.IntN(6)]
	c.body = make([]byte, size)
	for i := range c.body {
		c.body[i] = byte(r.Uint32())
	}
	return c
}

// request builds c's request: a body the stack may rewind through GetBody,
// or one it must send at most once.
func (c bodyCall) request(ctx context.Context, url string) *http.Request {
	req, err := http.NewRequestWithContext(ctx, c.method, url, nil)
	if err != nil {
		panic(err)
	}
	if len(c.body) > 0 || c.chunked {
		req.Body = io.NopCloser(bytes.NewReader(c.body))
		req.ContentLength = int64(len(c.body))
		if c.chunked {
			req.ContentLength = -1
			// Hide the length from net/http, which would otherwise sniff it.
			req.Body = io.NopCloser(io.MultiReader(bytes.NewReader(c.body)))
		}
		if c.rewindable {
			req.GetBody = func() (io.ReadCloser, error) {
				return io.NopCloser(io.MultiReader(bytes.NewReader(c.body))), nil
			}
		}
	}
	if c.idemKey {
		req.Header.Set("Idempotency-Key", "key-"+strconv.Itoa(len(c.body)))
	}
	return req
}

// TestBodiesNeverLost: for seeded random sequences of faults (503, 429, and
// connections reset before, during and after the upstream read the body, or
// closed after it), over PUTs and POSTs with and without Idempotency-Key,
// rewindable or not, of known or unknown length, from empty to 300 KiB:
//
//   - every body the upstream read to the end is byte-identical to what the
//     caller sent, and every partly read body is a prefix of it;
//   - a POST without Idempotency-Key reaches the upstream at most once;
//   - a body the stack cannot rewind is sent at most once;
//   - a call that ends in 200 was answered for the caller's exact body.
//
// OUTBOUND_BODIES_SEED reproduces one seed.
func TestBodiesNeverLost(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4}
	if v := os.Getenv("OUTBOUND_BODIES_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seeds = []uint64{s}
	}
	calls := 100
	if testing.Short() {
		calls = 30
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			u := newBodyUpstream(seed)
			defer u.srv.Close()
			cfg := testConfig()
			// Half of all attempts fail: keep the breaker and the retry budget
			// out of the way so that retries, the subject here, happen.
			cfg.CircuitEnabled = false
			cfg.RetryBudgetRatio = 0
			c := newClient(t, cfg)
			r := rand.New(rand.NewPCG(seed, 1))
			outcomes := map[string]int{}
			for i := 0; i < calls; i++ {
				call := randomCall(r)
				id := fmt.Sprintf("s%d-c%d", seed, i)
				ctx := requestid.NewContext(context.Background(), id)
				resp, err := c.Do(call.request(ctx, u.srv.URL))
				var answer []byte
				switch {
				case err != nil:
					outcomes["error"]++
				default:
					answer, _ = io.ReadAll(resp.Body)
					resp.Body.Close()
					outcomes[strconv.Itoa(resp.StatusCode)]++
				}
				ds := u.deliveries(id)
				want := call.body
				for j, d := range ds {
					if d.method != call.method {
						t.Fatalf("call %d (%v) attempt %d: method %s", i, call, j, d.method)
					}
					if d.complete && !bytes.Equal(d.body, want) {
						t.Fatalf("call %d (%v) attempt %d (%s): upstream read %d bytes that differ from the %d sent",
							i, call, j, bodyFaultNames[d.fault], len(d.body), len(want))
					}
					if !d.complete && !bytes.HasPrefix(want, d.body) {
						t.Fatalf("call %d (%v) attempt %d (%s): partial body is not a prefix of what was sent",
							i, call, j, bodyFaultNames[d.fault])
					}
				}
				if call.method == http.MethodPost && !call.idemKey && len(ds) > 1 {
					t.Fatalf("call %d (%v): a POST without Idempotency-Key reached the upstream %d times: %v",
						i, call, len(ds), faults(ds))
				}
				if !call.rewindable && len(call.body) > 0 && len(ds) > 1 {
					t.Fatalf("call %d (%v): a body without GetBody was sent %d times: %v", i, call, len(ds), faults(ds))
				}
				if err == nil && resp.StatusCode == 200 {
					sum := sha256.Sum256(want)
					if string(answer) != hex.EncodeToString(sum[:]) {
						t.Fatalf("call %d (%v): 200 for a body other than the caller's", i, call)
					}
				}
			}
			u.mu.Lock()
			var seen []string
			for f, n := range u.seen {
				seen = append(seen, fmt.Sprintf("%s=%d", bodyFaultNames[f], n))
			}
			u.mu.Unlock()
			t.Logf("%d calls: outcomes %v; faults injected %v", calls, outcomes, seen)
		})
	}
}

func faults(ds []delivery) []string {
	var s []string
	for _, d := range ds {
		s = append(s, bodyFaultNames[d.fault])
	}
	return s
}
