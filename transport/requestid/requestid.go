// Package requestid gives every logical outbound call one request ID, the same
// on every retry attempt, sends it in a header (X-Request-ID by default), and
// carries it from inbound requests to outbound calls and into logs.
//
// The shortest correct use, outermost in the chain so that retries inside it
// reuse the ID:
//
//	client := outbound.Wrap(http.DefaultClient, requestid.Middleware(), retry.Middleware())
//
// On the server side, Handler accepts a well-formed inbound ID (or makes a new
// one), puts it in the request context and on the response; outbound calls
// made with that context then carry the same ID with no further code, and
// LogHandler adds it to every log record written with that context.
package requestid

import (
	"context"
	"net/http"
	"slices"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/outboundhttp/outbound/internal/body"
	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/internal/idle"
	"github.com/outboundhttp/outbound/internal/reqheader"
)

// NewContext returns a copy of ctx carrying the request ID id. Transport
// sends it instead of generating one; the other outbound layers (tracing,
// error values) read it from the same place.
func NewContext(ctx context.Context, id string) context.Context {
	return callctx.WithRequestID(ctx, id)
}

// FromContext returns the request ID carried by ctx, if any (an empty ID
// counts as none).
func FromContext(ctx context.Context) (string, bool) {
	return callctx.RequestID(ctx)
}

// Transport is an http.RoundTripper that gives each request a request ID. It
// keeps the header when the caller set it, else uses the ID in the request's
// context, else generates one; it sends the ID in the header and puts it in the
// context of the request it passes on, so every inner layer and attempt sees
// the same ID.
//
// When the caller's header and the context disagree, the header wins (it is
// what the upstream will log) and the context passed on is updated to match.
//
// When the layers below include a transport/header Transport with only
// layers between that pass headers on unchanged (as in outbound.NewClient),
// the copy that carries the ID also carries that layer's static fields the
// caller's request lacks, so the request is copied once instead of twice
// (see header.Transport.PresetHeaders). What is sent does not change.
//
// A Transport is safe for concurrent use. Its zero value is not usable; build
// one with NewTransport. It holds no per-request resources.
type Transport struct {
	next http.RoundTripper
	cfg  config
	bind bool // next fills the call's context in place (callctx.AdoptsCall)
	// Fields a layer below sets on every request that lacks them
	// (reqheader.Preset): set on this layer's copy too, so that layer
	// sends the copy on instead of copying it again.
	preset []reqheader.Field
}

func newTransport(next http.RoundTripper, cfg config) *Transport {
	if next == nil {
		next = http.DefaultTransport
	}
	preset := reqheader.Fields(reqheader.Preset(next))
	// The ID's header is this layer's own, whatever a layer below presets.
	preset = slices.DeleteFunc(preset, func(f reqheader.Field) bool { return f.Key == cfg.header })
	return &Transport{next: next, cfg: cfg, bind: callctx.AdoptsCall(next), preset: preset}
}

var _ http.RoundTripper = (*Transport)(nil)

// NewTransport returns a Transport that passes requests to next (nil means
// http.DefaultTransport).
func NewTransport(next http.RoundTripper, opts ...Option) *Transport {
	return newTransport(next, newConfig(opts))
}

// Middleware returns a middleware for outbound.Chain that wraps its argument
// in a Transport. Place it outside (before) retry so all attempts share one ID.
func Middleware(opts ...Option) func(http.RoundTripper) http.RoundTripper {
	cfg := newConfig(opts)
	return func(next http.RoundTripper) http.RoundTripper { return newTransport(next, cfg) }
}

// RoundTrip implements http.RoundTripper. It never modifies req: when it has
// to change the header or the context, it passes on a copy.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	ctxID, inCtx := callctx.RequestID(ctx)

	var id string
	if v := req.Header[t.cfg.header]; len(v) > 0 && v[0] != "" {
		// The caller's header wins: it is what the upstream sees and logs.
		id = v[0]
		if !inCtx || ctxID != id {
			ctx = callctx.WithRequestID(ctx, id)
			t.span(ctx, id)
			// Only the context changes, so a shallow copy is enough.
			return t.send(req.WithContext(ctx))
		}
		t.span(ctx, id)
		return t.send(req)
	}

	if inCtx {
		t.span(ctx, ctxID)
		return t.send(t.copy(req, ctx, []string{ctxID}))
	}
	// The call's context holds the ID, its header value and, for a UUID,
	// its text in one allocation. When next is a budget layer, it fills its
	// deadline in instead of making a context and a request copy of its own
	// (callctx.Call): the request copy is bound to the call's context, and
	// this layer sends it once and never reads its context again.
	call := callctx.NewCall(ctx)
	var vals []string
	if t.cfg.uuid {
		id, vals = call.SetUUID(uuidV4())
	} else {
		id = t.cfg.newID()
		vals = call.SetID(id)
	}
	t.span(call, id)
	r2 := t.copy(req, call, vals)
	if t.bind {
		call.Bind(r2)
	}
	return t.send(r2)
}

// copy returns req's copy with context ctx, the ID's header set to ids, and
// the preset fields req lacks.
func (t *Transport) copy(req *http.Request, ctx context.Context, ids []string) *http.Request {
	var buf [4]reqheader.Field
	fs := append(buf[:0], reqheader.Field{Key: t.cfg.header, Values: ids})
	fs = reqheader.Missing(fs, t.preset, req)
	return reqheader.Copy(req, ctx, fs...)
}

func (t *Transport) send(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	return body.Checked(resp, err, "requestid")
}

// CloseIdleConnections forwards to the wrapped RoundTripper when it has the method.
func (t *Transport) CloseIdleConnections() { idle.Close(t.next) }

func (t *Transport) span(ctx context.Context, id string) {
	if t.cfg.span {
		setSpanAttr(ctx, t.cfg.spanAttr, id)
	}
}

func setSpanAttr(ctx context.Context, key, id string) {
	if s := trace.SpanFromContext(ctx); s.IsRecording() {
		s.SetAttributes(attribute.StringSlice(key, []string{id}))
	}
}

func (c *config) newID() string {
	if id := c.gen(); id != "" {
		return id
	}
	return UUIDv4()
}
