package requestid

import (
	crand "crypto/rand"
	"encoding/binary"
	"math/rand/v2"
	"net/textproto"
	"strconv"
	"strings"
	"sync"

	"github.com/google/uuid"
	"golang.org/x/net/http/httpguts"
)

// DefaultHeader is the header that carries the request ID unless WithHeader
// says otherwise; the reference article's choice and the de-facto standard
// (nginx $request_id, Heroku, AWS ALB's X-Amzn-Trace-Id aside).
const DefaultHeader = "X-Request-ID"

// DefaultSpanAttribute is the span attribute WithSpanAttribute sets when the
// header is DefaultHeader. It is the OpenTelemetry semantic-convention name of
// a captured request header, http.request.header.<lower-case name> (a string
// array), so the ID shows up under the same key otelhttp uses when it is told
// to capture the header, and no private attribute name is invented.
const DefaultSpanAttribute = "http.request.header.x-request-id"

// MaxLen is the longest inbound ID Handler accepts; longer values are replaced.
// 128 bytes hold any UUID, ULID, W3C trace ID or a short prefixed form of them.
const MaxLen = 128

// Option configures Transport and Handler.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	header   string        // canonical header key
	gen      func() string // never nil
	uuid     bool          // gen is the default, UUIDv4
	span     bool
	spanAttr string
}

func newConfig(opts []Option) config {
	c := config{header: textproto.CanonicalMIMEHeaderKey(DefaultHeader), gen: UUIDv4, uuid: true}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	c.spanAttr = "http.request.header." + strings.ToLower(c.header)
	return c
}

// WithHeader sets the header that carries the ID (default DefaultHeader). It
// panics if name is not a valid header field name (RFC 9110 §5.1 token).
func WithHeader(name string) Option {
	if !httpguts.ValidHeaderFieldName(name) {
		panic("requestid: WithHeader(" + strconv.Quote(name) + "): not a valid header field name")
	}
	key := textproto.CanonicalMIMEHeaderKey(name)
	return optionFunc(func(c *config) { c.header = key })
}

// WithGenerator sets the function that makes new IDs (default UUIDv4). It is
// called once per logical call that arrives without an ID, possibly from
// several goroutines at once, so it must be safe for concurrent use. It must
// return a non-empty value that is valid in a header; an empty result is
// replaced by a UUIDv4. A nil gen is ignored.
func WithGenerator(gen func() string) Option {
	return optionFunc(func(c *config) {
		if gen != nil {
			c.gen, c.uuid = gen, false
		}
	})
}

// WithSpanAttribute also records the ID on the span current in the request's
// context (trace.SpanFromContext), when that span is recording, under
// DefaultSpanAttribute (or http.request.header.<name> for another header).
// For Handler that is the server span started by an outer otelhttp handler;
// for Transport it is the caller's span, since the transport/tracing layers
// sit inside requestid and record the ID on their own spans.
func WithSpanAttribute() Option {
	return optionFunc(func(c *config) { c.span = true })
}

// UUIDv4 returns a random (version 4, RFC 9562 §5.4) UUID in its
// 36-character text form. It is the default generator.
//
// Its 122 random bits come from a ChaCha8 generator (math/rand/v2's, a
// cryptographically strong one with key erasure) seeded with 32 bytes from
// crypto/rand, one per goroutine at a time from a sync.Pool, rather than
// from a crypto/rand read per ID (google/uuid's NewString): the IDs stay as
// unpredictable as crypto/rand's — one caller cannot guess another's ID, to
// forge or collide with it in logs — for a few nanoseconds and no lock per
// call. google/uuid's EnableRandPool would do the same behind a global
// mutex, and changes every uuid caller of the program, which a library must
// not do.
func UUIDv4() string { return uuid.UUID(uuidV4()).String() }

// uuidV4 returns the 16 bytes of a new UUIDv4 (see UUIDv4). The Transport
// formats them into the call's context (callctx.Call.SetUUID), so the text
// costs no allocation of its own.
func uuidV4() [16]byte {
	g := idSources.Get().(*rand.ChaCha8)
	var u [16]byte
	binary.LittleEndian.PutUint64(u[:8], g.Uint64())
	binary.LittleEndian.PutUint64(u[8:], g.Uint64())
	idSources.Put(g)
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // variant 10 (RFC 9562 §4.1)
	return u
}

// idSources holds the generators of UUIDv4. A pooled generator is used by
// one goroutine at a time, and one dropped by the garbage collector is
// replaced by a freshly seeded one.
var idSources = sync.Pool{New: func() any {
	var seed [32]byte
	crand.Read(seed[:]) // never fails since Go 1.24 (it crashes the program instead)
	return rand.NewChaCha8(seed)
}}

// UUIDv7 returns a time-ordered (version 7, RFC 9562 §5.7) UUID: IDs sort by
// creation time, which keeps them close together in database indexes and makes
// log searches by time range cheap. Use it with WithGenerator(UUIDv7).
func UUIDv7() string {
	// NewV7 fails only if the system random source fails, which since Go 1.24
	// crashes the program inside crypto/rand instead.
	return uuid.Must(uuid.NewV7()).String()
}
