package chaos

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/outboundhttp/outbound/internal/pushback"
)

// maxRecordedBody bounds how much of a request body the Server reads to
// fingerprint it; the rest is discarded unread.
const maxRecordedBody = 1 << 20

// Server is a scriptable flaky upstream: an http.Handler that plays a
// scenario over real sockets and records every request it receives.
//
// Use it as a handler (in an httptest.Server or your own mux) or run it on a
// loopback listener with Start and Close. Its scenario clock starts at
// NewServer and again at Start. It is safe for concurrent use; Records may be
// called while requests are being served. Close releases every hanging or
// stalled request. The state of a Capacity fault (its queue, workers and
// requests in flight) lives in the Server, shared by all the requests it
// matches.
type Server struct {
	eng     *engine
	sleep   sleeper
	handler http.Handler
	idHdr   string
	attHdr  string
	idem    *idemStore // WithIdempotency; nil: keys are ignored

	seq    int             // guarded by mu
	ctx    context.Context // canceled by Close: ends hangs, stalls, latency
	cancel context.CancelFunc

	mu       sync.Mutex
	records  []Record // guarded by mu
	closed   bool     // guarded by mu
	inflight sync.WaitGroup
	srv      *http.Server  // guarded by mu
	url      string        // guarded by mu
	served   chan struct{} // closed when srv.Serve returns
}

// NewServer returns a Server that plays s; opts may add faults, override the
// seed and set the healthy handler and the recorded headers. It
// panics if a fault is invalid.
func NewServer(s Scenario, opts ...Option) *Server {
	c := newConfig(append([]Option{WithScenario(s)}, opts...))
	h := c.handler
	if h == nil {
		h = http.HandlerFunc(okHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := &Server{
		eng:     newEngine("NewServer", c.faults, c.seed, time.Now()),
		sleep:   c.sleep,
		handler: h,
		idHdr:   c.requestIDHeader,
		attHdr:  c.attemptHeader,
		ctx:     ctx,
		cancel:  cancel,
	}
	if c.idempotencyKeys > 0 {
		srv.idem = newIdemStore(c.idempotencyKeys)
	}
	return srv
}

func okHandler(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"status":"ok"}`+"\n")
}

// Start serves on a new listener on 127.0.0.1 (an ephemeral port) and
// returns the base URL ("http://127.0.0.1:port"). The scenario's clock
// starts again. Start may be called once; Close stops the server.
func (s *Server) Start() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", errors.New("chaos: Server.Start after Close")
	}
	if s.srv != nil {
		return "", errors.New("chaos: Server.Start called twice")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		// net/http logs aborted handlers and hijack misuse to stderr by
		// default; a test tool must stay quiet.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	s.url = "http://" + ln.Addr().String()
	s.served = make(chan struct{})
	s.eng.restart(time.Now())
	srv, served := s.srv, s.served
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	return s.url, nil
}

// URL returns the base URL given by Start, or "" before Start.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// Close ends hanging and stalled requests, stops the listener started by
// Start, closes its connections and waits for every handler to return. It is
// safe to call more than once. Requests arriving after Close are aborted.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	srv, served := s.srv, s.served
	s.mu.Unlock()
	s.cancel()
	var err error
	if srv != nil {
		err = srv.Close()
		<-served
	}
	s.inflight.Wait()
	return err
}

// Restart makes now the start of the scenario (windows and Count caps begin
// again) and forgets the recorded requests.
func (s *Server) Restart() {
	s.mu.Lock()
	s.records = nil
	s.mu.Unlock()
	s.eng.restart(time.Now())
}

// Stats returns how many requests the Server saw and which faults fired.
func (s *Server) Stats() Stats { return s.eng.stats() }

// Records returns a copy of what the Server has received so far, in order of
// arrival.
func (s *Server) Records() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Record, len(s.records))
	copy(out, s.records)
	sortBySeq(out)
	return out
}

// ServeHTTP records r, then answers as the scenario decides, in the order a
// request meets the scenario: it arrives and the faults are decided, it waits
// (latency, a capacity's queue and work), its answer is made (injected,
// replayed for its key, or the healthy handler's), a reset or a hang fires
// instead of that answer, and the answer is sent, slowed by a body fault.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec, d := s.arrive(r)
	defer s.inflight.Done()
	reqBody := s.readBody(r, &rec)

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()

	// With WithIdempotency, a request with a key is answered from the key's
	// store: processed once, replayed after.
	keyed := s.idem != nil && rec.IdempotencyKey != ""
	rec.Delay = d.delay
	if err := s.eng.wait(ctx, s.sleep, d); err != nil {
		rec.Canceled = true
		if keyed {
			rec.KeyOutcome = KeySkipped
		}
		s.record(rec, d.answer)
		panic(http.ErrAbortHandler) // no answer at all, not an empty 200
	}
	cw, injected := s.answer(r, reqBody, d, keyed, &rec)
	if d.answer != nil && !injected {
		s.record(rec, d.answer)
		if d.answer.Kind == KindReset {
			reset(w)
			return
		}
		<-ctx.Done() // hang
		panic(http.ErrAbortHandler)
	}
	rec.Status = cw.status
	if d.body != nil {
		rec.Fault = d.body.Kind
	}
	if ra := cw.header.Get("Retry-After"); ra != "" {
		if wait, ok := pushback.ParseRetryAfter(ra, time.Now()); ok {
			rec.RetryAfter = wait
		}
	}
	if d.body != nil {
		s.record(rec, d.answer)
		send(ctx, w, cw, d.body, s.sleep)
		return
	}
	// A whole answer at once: Answered is when it has left, as the
	// politeness count needs. A request that arrives while the answer still
	// waits in the server's buffer (the handler has returned, or its
	// goroutine is preempted on a loaded machine) comes from a client that
	// has not been told yet. The record is stored first, so that a client
	// that has the answer finds its record in Records, and its time moved
	// to when the answer left.
	s.record(rec, d.answer)
	send(ctx, w, cw, nil, s.sleep)
	http.NewResponseController(w).Flush()
	s.answeredAt(rec.Seq, time.Now())
}

// arrive takes r in: its arrival order, arrival time and the fault decision
// are taken together, so Seq, Time and the scenario's draws agree even under
// concurrency. It counts r in flight (the caller calls s.inflight.Done) and
// returns r's Record so far. After Close it aborts r.
func (s *Server) arrive(r *http.Request) (Record, decision) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		panic(http.ErrAbortHandler)
	}
	s.inflight.Add(1)
	seq, now := s.seq, time.Now()
	s.seq++
	d := s.eng.decide(r.Host, now)
	s.mu.Unlock()

	rec := Record{
		Seq:            seq,
		Time:           now,
		Method:         r.Method,
		Path:           r.URL.Path,
		Host:           r.Host,
		RequestID:      r.Header.Get(s.idHdr),
		Attempt:        -1,
		IdempotencyKey: r.Header.Get("Idempotency-Key"),
	}
	if v := r.Header.Get(s.attHdr); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			rec.Attempt = n
		}
	}
	return rec, d
}

// answer makes the answer to r, buffered so that a body fault can slow it:
// the fault's status (injected is then true), the stored or new answer for
// r's key, or the healthy handler's. For a reset or a hang the work is still
// done first, when r has a key: the answer is lost, not the work.
func (s *Server) answer(r *http.Request, reqBody []byte, d decision, keyed bool, rec *Record) (cw captureWriter, injected bool) {
	switch {
	case d.answer != nil && d.answer.Kind.answersStatus():
		if keyed {
			rec.KeyOutcome = KeySkipped // answered before the work
		}
		cw = plainAnswer(d.answer.Status, "chaos: injected "+strconv.Itoa(d.answer.Status)+" "+http.StatusText(d.answer.Status)+"\n")
		for k, v := range d.answer.Header {
			cw.header[k] = append([]string(nil), v...)
		}
		return cw, true
	case keyed:
		return s.keyedAnswer(r, reqBody, rec), false
	case d.answer == nil:
		return s.serve(r, reqBody), false
	}
	return cw, false // a reset or a hang, without a key
}

// send writes cw to w: at once, or as body (a Stall or Trickle fault)
// slows it. A stall sends its bytes and then holds the response open until
// ctx ends; a trickle sends a chunk every interval. Either aborts the
// response when ctx ends or a write fails.
func send(ctx context.Context, w http.ResponseWriter, cw captureWriter, body *Fault, sleep sleeper) {
	for k, v := range cw.header {
		w.Header()[k] = v
	}
	b := cw.body.Bytes()
	if cw.status == http.StatusNoContent || cw.status == http.StatusNotModified {
		b = nil // RFC 9110 §15.3.5, §15.4.5: no content
	} else {
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	}
	w.WriteHeader(cw.status)
	if body == nil {
		w.Write(b)
		return
	}
	rc := http.NewResponseController(w)
	if body.Kind == KindStall {
		w.Write(b[:min(body.Bytes, len(b))])
		rc.Flush()
		<-ctx.Done()
		panic(http.ErrAbortHandler)
	}
	rc.Flush()
	for len(b) > 0 {
		if sleep(ctx, body.Every) != nil {
			panic(http.ErrAbortHandler)
		}
		n := min(body.Bytes, len(b))
		if _, err := w.Write(b[:n]); err != nil {
			panic(http.ErrAbortHandler)
		}
		rc.Flush()
		b = b[n:]
	}
}

// serve runs the healthy handler on r, with its body read as reqBody.
func (s *Server) serve(r *http.Request, reqBody []byte) captureWriter {
	cw := captureWriter{header: http.Header{}}
	r.Body = io.NopCloser(bytes.NewReader(reqBody))
	s.handler.ServeHTTP(&cw, r)
	if cw.status == 0 {
		cw.status = http.StatusOK
	}
	return cw
}

// keyedAnswer answers a request carrying an Idempotency-Key (WithIdempotency):
// the first one with its key is processed and its answer stored, a later one
// gets the stored answer; rec.KeyOutcome says which, or why neither.
func (s *Server) keyedAnswer(r *http.Request, reqBody []byte, rec *Record) captureWriter {
	fp := r.Method + "\x00" + r.URL.Path + "\x00" + rec.BodyHash
	e, k := s.idem.begin(rec.IdempotencyKey, fp)
	rec.KeyOutcome = k
	switch k {
	case KeyReplayed:
		cw := captureWriter{header: e.header.Clone(), status: e.status}
		cw.header.Set("Idempotent-Replayed", "true") // as Stripe marks a replay
		cw.body.Write(e.body)
		return cw
	case KeyInFlight:
		return plainAnswer(http.StatusConflict, "chaos: a request with this Idempotency-Key is still being processed\n")
	case KeyMismatch:
		return plainAnswer(http.StatusUnprocessableEntity, "chaos: this Idempotency-Key was used for a different request\n")
	}
	done := false
	defer func() {
		if !done {
			s.idem.abandon(e) // the handler panicked: the key stays unused
		}
	}()
	cw := s.serve(r, reqBody)
	s.idem.finish(e, cw.status, cw.header, cw.body.Bytes())
	done = true
	return cw
}

// plainAnswer is a short text answer with status.
func plainAnswer(status int, msg string) captureWriter {
	cw := captureWriter{header: http.Header{}, status: status}
	cw.header.Set("Content-Type", "text/plain; charset=utf-8")
	cw.body.WriteString(msg)
	return cw
}

// readBody reads (a bounded prefix of) the request body and fingerprints it,
// so duplicate deliveries of the same POST can be found without an ID.
func (s *Server) readBody(r *http.Request, rec *Record) []byte {
	if r.Body == nil {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(r.Body, maxRecordedBody))
	rec.BodyLen = int64(len(b))
	if len(b) > 0 {
		sum := sha256.Sum256(b)
		rec.BodyHash = hex.EncodeToString(sum[:16])
	}
	return b
}

// record stores rec with the fault that decided the answer; the time of the
// record's answer is now.
func (s *Server) record(rec Record, answer *Fault) {
	rec.Answered = time.Now()
	if rec.RetryAfter > 0 {
		rec.NotBefore = rec.Answered.Add(rec.RetryAfter)
	}
	if answer != nil {
		rec.Fault = answer.Kind
	}
	s.mu.Lock()
	s.records = append(s.records, rec)
	s.mu.Unlock()
}

// answeredAt moves the time of the answer of request seq to at, unless
// Restart has forgotten its record. The record was stored just before, so
// it is found among the last ones, behind only those of requests answered
// meanwhile.
func (s *Server) answeredAt(seq int, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.records) - 1; i >= 0; i-- {
		if r := &s.records[i]; r.Seq == seq {
			r.Answered = at
			if r.RetryAfter > 0 {
				r.NotBefore = at.Add(r.RetryAfter)
			}
			return
		}
	}
}

// reset aborts the connection with a TCP RST: the connection is hijacked and
// closed with SO_LINGER 0, so the kernel discards unsent data and resets
// instead of closing gracefully. Where hijacking is impossible (HTTP/2), the
// stream is aborted instead.
func reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

// captureWriter buffers a handler's answer so it can be replayed slowly.
type captureWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (c *captureWriter) Header() http.Header { return c.header }

func (c *captureWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
}

func (c *captureWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return c.body.Write(p)
}
