package requestid

import (
	"context"
	"log/slog"
)

// LogKey is the attribute key LogHandler adds.
const LogKey = "request_id"

// LogHandler returns a slog.Handler that passes records to h and adds the
// attribute request_id (LogKey) to every record logged with a context that
// carries a request ID (slog.InfoContext and friends). Records logged without
// a context, or with one that has no ID, pass through unchanged.
//
// The attribute is always at the top level of the record, also under
// WithGroup, so log queries find it under one name. Handlers derived with
// WithAttrs and WithGroup keep adding it. The returned handler is safe for
// concurrent use if h is.
func LogHandler(h slog.Handler) slog.Handler {
	if lh, ok := h.(*logHandler); ok {
		return lh // already wrapped: do not add the attribute twice
	}
	return &logHandler{base: h, h: h}
}

// logHandler keeps base, the wrapped handler with no group open, next to h,
// base with every later WithAttrs/WithGroup applied, and the list of those
// calls (ops) since the first group. Without a group, the ID is added to the
// record, which puts it at the top level; under a group, a record attribute
// would land inside the group, so the ID is added to base and ops replayed.
type logHandler struct {
	base slog.Handler
	h    slog.Handler
	ops  []logOp
}

type logOp struct {
	group string // a WithGroup call when non-empty
	attrs []slog.Attr
}

func (l *logHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return l.h.Enabled(ctx, level)
}

func (l *logHandler) Handle(ctx context.Context, r slog.Record) error {
	id, ok := FromContext(ctx)
	if !ok {
		return l.h.Handle(ctx, r)
	}
	attr := slog.String(LogKey, id)
	if len(l.ops) == 0 {
		// Handlers must not modify a record they share with the caller
		// (slog.Handler docs): Clone before adding.
		r = r.Clone()
		r.AddAttrs(attr)
		return l.h.Handle(ctx, r)
	}
	h := l.base.WithAttrs([]slog.Attr{attr})
	for _, op := range l.ops {
		if op.group != "" {
			h = h.WithGroup(op.group)
		} else {
			h = h.WithAttrs(op.attrs)
		}
	}
	return h.Handle(ctx, r)
}

func (l *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return l
	}
	if len(l.ops) == 0 {
		h := l.base.WithAttrs(attrs)
		return &logHandler{base: h, h: h}
	}
	return &logHandler{base: l.base, h: l.h.WithAttrs(attrs), ops: appendOp(l.ops, logOp{attrs: attrs})}
}

func (l *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return l // slog.Handler: WithGroup("") returns the receiver
	}
	return &logHandler{base: l.base, h: l.h.WithGroup(name), ops: appendOp(l.ops, logOp{group: name})}
}

// appendOp appends to a copy, so handlers derived from one parent never share
// (and overwrite) a backing array.
func appendOp(ops []logOp, op logOp) []logOp {
	out := make([]logOp, len(ops), len(ops)+1)
	copy(out, ops)
	return append(out, op)
}
