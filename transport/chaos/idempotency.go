package chaos

import (
	"container/list"
	"fmt"
	"net/http"
	"strconv"
	"sync"
)

// DefaultMaxIdempotencyKeys is how many Idempotency-Keys a Server
// WithIdempotency remembers: the oldest is forgotten beyond it, as a real
// server expires its keys (Stripe after 24 hours).
const DefaultMaxIdempotencyKeys = 10000

// KeyOutcome is what a Server WithIdempotency did with a request's
// Idempotency-Key (Record.KeyOutcome).
type KeyOutcome uint8

const (
	// KeyNone: the Server does not honour keys (no WithIdempotency), or the
	// request carried none; it was processed as it came.
	KeyNone KeyOutcome = iota
	// KeyStored: the first request with the key that the Server processed;
	// its answer is stored under the key. A reset or a hang fires after the
	// work, so the stored answer is what a retry gets.
	KeyStored
	// KeyReplayed: the key's work was done by an earlier request; this one
	// got the stored answer (with the header Idempotent-Replayed: true) and
	// was not processed again.
	KeyReplayed
	// KeyInFlight: an earlier request with the key was still being
	// processed; this one got 409 Conflict and was not processed
	// (draft-ietf-httpapi-idempotency-key-header §2.7).
	KeyInFlight
	// KeyMismatch: the key came earlier with a different request (method,
	// path or body); this one got 422 Unprocessable Content and was not
	// processed (same section).
	KeyMismatch
	// KeySkipped: the request ended before its work — an injected status or
	// a shed 503 answered it, or the client left during injected latency or
	// in the queue of a Capacity fault — so nothing was processed or stored
	// and the next request with the key is processed.
	KeySkipped
)

// String returns "none", "stored", "replayed", "in-flight", "mismatch" or
// "skipped".
func (k KeyOutcome) String() string {
	switch k {
	case KeyNone:
		return "none"
	case KeyStored:
		return "stored"
	case KeyReplayed:
		return "replayed"
	case KeyInFlight:
		return "in-flight"
	case KeyMismatch:
		return "mismatch"
	case KeySkipped:
		return "skipped"
	}
	return "KeyOutcome(" + strconv.Itoa(int(k)) + ")"
}

// MarshalText encodes k as its name, so Records read well as JSON.
func (k KeyOutcome) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText decodes a name written by MarshalText.
func (k *KeyOutcome) UnmarshalText(b []byte) error {
	for c := KeyNone; c <= KeySkipped; c++ {
		if c.String() == string(b) {
			*k = c
			return nil
		}
	}
	return fmt.Errorf("chaos: unknown key outcome %q", b)
}

// idemStore holds the answers of the keys a Server has processed, at most
// max of them: the oldest key is forgotten first. Memory is bounded by max
// times the size of an answer. It is safe for concurrent use.
type idemStore struct {
	mu    sync.Mutex
	max   int
	keys  map[string]*list.Element // of *idemEntry
	order list.List                // front: newest
}

// idemEntry is one key: the request it came with, and its answer once the
// work is done.
type idemEntry struct {
	key         string
	fingerprint string
	done        bool
	status      int
	header      http.Header
	body        []byte
}

func newIdemStore(max int) *idemStore {
	return &idemStore{max: max, keys: make(map[string]*list.Element)}
}

// begin looks key up for a request with fingerprint fp. A new key is
// recorded as being processed (KeyStored): the caller does the work and
// gives its answer to finish. Otherwise the outcome says why the request is
// not processed, and for KeyReplayed e holds the stored answer.
func (s *idemStore) begin(key, fp string) (e *idemEntry, k KeyOutcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.keys[key]; ok {
		e := el.Value.(*idemEntry)
		switch {
		case e.fingerprint != fp:
			return nil, KeyMismatch
		case !e.done:
			return nil, KeyInFlight
		}
		return e, KeyReplayed
	}
	e = &idemEntry{key: key, fingerprint: fp}
	s.keys[key] = s.order.PushFront(e)
	if s.order.Len() > s.max {
		old := s.order.Back()
		s.order.Remove(old)
		delete(s.keys, old.Value.(*idemEntry).key)
	}
	return e, KeyStored
}

// finish stores the answer of e's work. The entry may have been forgotten
// meanwhile; the answer then goes nowhere.
func (s *idemStore) finish(e *idemEntry, status int, header http.Header, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.status, e.header, e.body, e.done = status, header.Clone(), append([]byte(nil), body...), true
}

// abandon forgets e, whose work did not finish (the handler panicked), so
// that the next request with its key is processed.
func (s *idemStore) abandon(e *idemEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.keys[e.key]; ok && el.Value.(*idemEntry) == e {
		s.order.Remove(el)
		delete(s.keys, e.key)
	}
}

// len returns the number of keys held.
func (s *idemStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys)
}
