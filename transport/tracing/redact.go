package tracing

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"

	"github.com/outboundhttp/outbound/internal/callctx"
)

// redactURL replaces every query value of u with "REDACTED" and drops the
// fragment. u is what otelhttp puts in url.full: userinfo already removed.
// It returns u itself when there is nothing to redact, so the common case
// costs no allocation.
func redactURL(u string) string {
	i := strings.IndexAny(u, "?#")
	if i < 0 {
		return u
	}
	base, rest := u[:i], u[i:]
	if rest[0] == '#' { // fragment only
		return base
	}
	q := rest[1:]
	if j := strings.IndexByte(q, '#'); j >= 0 {
		q = q[:j]
	}
	var b strings.Builder
	b.Grow(len(base) + 1 + len(q) + 8)
	b.WriteString(base)
	b.WriteByte('?')
	for n := 0; ; n++ {
		pair, more, found := strings.Cut(q, "&")
		if n > 0 {
			b.WriteByte('&')
		}
		if k, v, ok := strings.Cut(pair, "="); ok && v != "" {
			b.WriteString(k)
			b.WriteString("=REDACTED")
		} else {
			b.WriteString(pair)
		}
		if !found {
			break
		}
		q = more
	}
	return b.String()
}

// scrubText removes userinfo from every URL quoted in msg (an error
// message), and redacts their query values and fragments when redact is set.
// Errors of the layers below may quote the request URL, and the message
// becomes the span status; the URL itself is not known here, so every
// "scheme://..." run is treated as a URL. msg is returned unchanged, without
// allocating, when it quotes no URL.
func scrubText(msg string, redact bool) string {
	if !strings.Contains(msg, "://") {
		return msg
	}
	var b strings.Builder
	for {
		i := strings.Index(msg, "://")
		if i < 0 {
			break
		}
		start := i
		for start > 0 && isSchemeByte(msg[start-1]) {
			start--
		}
		end := i + 3
		for end < len(msg) && !strings.ContainsRune(" \t\r\n\"'<>`", rune(msg[end])) {
			end++
		}
		u := msg[start:end]
		// Userinfo is everything before the last '@' of the authority.
		authEnd := len(u)
		if j := strings.IndexAny(u[i-start+3:], "/?#"); j >= 0 {
			authEnd = i - start + 3 + j
		}
		if at := strings.LastIndexByte(u[:authEnd], '@'); at >= 0 {
			u = u[:i-start+3] + u[at+1:]
		}
		if redact {
			u = redactURL(u)
		}
		b.WriteString(msg[:start])
		b.WriteString(u)
		msg = msg[end:]
	}
	b.WriteString(msg)
	return b.String()
}

func isSchemeByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'
}

// attemptTP hands otelhttp a tracer that adds the per-call facts otelhttp
// cannot know and keeps query values out of url.full. Wrapping the tracer
// (rather than overwriting url.full afterwards) means the raw URL never reaches
// the span, its processors or its exporter.
type attemptTP struct {
	embedded.TracerProvider
	tp     trace.TracerProvider // nil: per request, as otelhttp does
	redact bool
}

func (p *attemptTP) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	t := &attemptTracer{name: name, opts: opts, redact: p.redact}
	if p.tp != nil {
		t.tracer = p.tp.Tracer(name, opts...)
	}
	return t
}

type attemptTracer struct {
	embedded.Tracer
	tracer trace.Tracer // nil: resolved per request
	name   string
	opts   []trace.TracerOption
	redact bool
}

func (t *attemptTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if s, ok := takeStarted(ctx); ok {
		// The attempt layer started this span itself (quiet.go) with the
		// same tracer, name and kind, found it recording, and handed it to
		// otelhttp, which is asking for it now.
		return ctx, s
	}
	tr := t.tracer
	if tr == nil {
		// otelhttp's default: the provider of the parent span, so attempts
		// follow the logical span's provider; else the global one.
		var tp trace.TracerProvider
		if s := trace.SpanFromContext(ctx); s.SpanContext().IsValid() {
			tp = s.TracerProvider()
		} else {
			tp = otel.GetTracerProvider()
		}
		tr = tp.Tracer(t.name, t.opts...)
	}
	ctx, span := tr.Start(ctx, name, opts...)
	if !span.IsRecording() {
		return ctx, span
	}
	attrs := make([]attribute.KeyValue, 0, 4)
	attrs = append(attrs, AttrAttemptType.String(callctx.AttemptTypeOf(ctx).String()))
	if n := callctx.Attempt(ctx); n > 0 {
		// Absent on the first attempt, as the conventions require.
		attrs = append(attrs, semconv.HTTPRequestResendCount(n))
	}
	if id, ok := callctx.RequestID(ctx); ok {
		attrs = append(attrs, AttrRequestID.String(id))
	}
	if r, ok := callctx.Route(ctx); ok {
		attrs = append(attrs, semconv.URLTemplate(r))
	}
	span.SetAttributes(attrs...)
	rs := &redactingSpan{Span: span, redact: t.redact}
	return trace.ContextWithSpan(ctx, rs), rs
}

// redactingSpan rewrites url.full and URLs quoted in the status description
// (otelhttp uses the error message) on their way into the span.
type redactingSpan struct {
	trace.Span
	redact bool // query values too; userinfo always goes
}

func (s *redactingSpan) SetAttributes(kv ...attribute.KeyValue) {
	if !s.redact {
		// otelhttp already removed the userinfo from url.full.
		s.Span.SetAttributes(kv...)
		return
	}
	for i, a := range kv {
		if a.Key != semconv.URLFullKey {
			continue
		}
		if r := redactURL(a.Value.AsString()); r != a.Value.AsString() {
			// Copy: the caller's slice is not ours to change.
			kv = append([]attribute.KeyValue(nil), kv...)
			kv[i] = semconv.URLFull(r)
		}
		break
	}
	s.Span.SetAttributes(kv...)
}

func (s *redactingSpan) SetStatus(code codes.Code, description string) {
	s.Span.SetStatus(code, scrubText(description, s.redact))
}
