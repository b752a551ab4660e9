package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/outboundhttp/outbound/transport/tracing"
	"github.com/outboundhttp/outbound/transport/tracing/otelsetup"
)

// telemetry is the OpenTelemetry setup of a run: OTLP export when the
// environment asks for it (OTEL_EXPORTER_OTLP_ENDPOINT, see otelsetup), and
// an in-memory recorder of ended spans for -trace.
type telemetry struct {
	opts     []tracing.Option
	recorder *tracetest.SpanRecorder // nil without -trace
	shutdown []func(context.Context) error
}

func setupTelemetry(ctx context.Context, record bool) (*telemetry, error) {
	p, err := otelsetup.Setup(ctx)
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	t := &telemetry{opts: p.TracingOptions(), shutdown: []func(context.Context) error{p.Shutdown}}
	if !record {
		return t, nil
	}
	t.recorder = tracetest.NewSpanRecorder()
	if sdk, ok := p.TracerProvider.(*sdktrace.TracerProvider); ok {
		// Spans go to the OTLP exporter and to the recorder.
		sdk.RegisterSpanProcessor(t.recorder)
		return t, nil
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(t.recorder))
	t.opts = append(t.opts, tracing.WithTracerProvider(tp))
	t.shutdown = append(t.shutdown, tp.Shutdown)
	return t, nil
}

// close flushes and stops the exporters within a few seconds, so an
// unreachable collector cannot hold the program.
func (t *telemetry) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var first error
	for _, f := range t.shutdown {
		if err := f(ctx); err != nil && first == nil {
			first = fmt.Errorf("telemetry shutdown: %w", err)
		}
	}
	return first
}

// retriedTrace returns the spans of the first call (in the order of
// prefixes, then of request IDs) that was retried: one of its attempt spans
// is a resend (http.request.resend_count). A call with two attempt spans and
// no resend was hedged, not retried: its hedge answered before the first
// attempt's failure came back.
func retriedTrace(spans []sdktrace.ReadOnlySpan, prefixes []string) ([]sdktrace.ReadOnlySpan, string) {
	byTrace := map[oteltrace.TraceID][]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		id := s.SpanContext().TraceID()
		byTrace[id] = append(byTrace[id], s)
	}
	type candidate struct {
		reqID string
		spans []sdktrace.ReadOnlySpan
	}
	var cands []candidate
	for _, group := range byTrace {
		resent := false
		reqID := ""
		for _, s := range group {
			if s.SpanKind() == oteltrace.SpanKindClient && attr(s.Attributes(), semconv.HTTPRequestResendCountKey) != "" {
				resent = true
			}
			if !s.Parent().IsValid() {
				reqID = attr(s.Attributes(), tracing.AttrRequestID)
			}
		}
		if resent && reqID != "" {
			cands = append(cands, candidate{reqID, group})
		}
	}
	for _, p := range prefixes {
		best := -1
		for i, c := range cands {
			if strings.HasPrefix(c.reqID, p) && (best < 0 || c.reqID < cands[best].reqID) {
				best = i
			}
		}
		if best >= 0 {
			return cands[best].spans, cands[best].reqID
		}
	}
	return nil, ""
}

func attr(kvs []attribute.KeyValue, k attribute.Key) string {
	for _, kv := range kvs {
		if kv.Key == k {
			return kv.Value.String()
		}
	}
	return ""
}

// printTree writes the spans of one trace as a tree, each span's events
// among its children in time order; times are offsets from the root's start.
func printTree(w io.Writer, spans []sdktrace.ReadOnlySpan) {
	children := map[oteltrace.SpanID][]sdktrace.ReadOnlySpan{}
	ids := map[oteltrace.SpanID]bool{}
	for _, s := range spans {
		ids[s.SpanContext().SpanID()] = true
	}
	var roots []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if p := s.Parent(); p.IsValid() && ids[p.SpanID()] {
			children[p.SpanID()] = append(children[p.SpanID()], s)
		} else {
			roots = append(roots, s)
		}
	}
	if len(roots) == 0 {
		return
	}
	sortSpans(roots)
	t0 := roots[0].StartTime()
	for _, r := range roots {
		fmt.Fprintf(w, "%s\n", spanLine(r, t0))
		printChildren(w, r, children, t0, "")
	}
}

func printChildren(w io.Writer, s sdktrace.ReadOnlySpan, children map[oteltrace.SpanID][]sdktrace.ReadOnlySpan, t0 time.Time, indent string) {
	type item struct {
		at   time.Time
		span sdktrace.ReadOnlySpan
		ev   *sdktrace.Event
	}
	var items []item
	for _, c := range children[s.SpanContext().SpanID()] {
		items = append(items, item{at: c.StartTime(), span: c})
	}
	for _, ev := range s.Events() {
		items = append(items, item{at: ev.Time, ev: &ev})
	}
	slices.SortStableFunc(items, func(a, b item) int { return a.at.Compare(b.at) })
	for i, it := range items {
		branch, next := "├─ ", "│  "
		if i == len(items)-1 {
			branch, next = "└─ ", "   "
		}
		if it.ev != nil {
			fmt.Fprintf(w, "%s%sevent %q at +%s%s\n", indent, branch, it.ev.Name, offset(it.at, t0), kvs(it.ev.Attributes))
			continue
		}
		fmt.Fprintf(w, "%s%s%s\n", indent, branch, spanLine(it.span, t0))
		printChildren(w, it.span, children, t0, indent+next)
	}
}

func spanLine(s sdktrace.ReadOnlySpan, t0 time.Time) string {
	status := ""
	if st := s.Status(); st.Code.String() != "Unset" {
		status = " status=" + st.Code.String()
		if st.Description != "" {
			status += fmt.Sprintf("(%q)", st.Description)
		}
	}
	return fmt.Sprintf("%s [%s] at +%s for %s%s%s", s.Name(), s.SpanKind(), offset(s.StartTime(), t0),
		s.EndTime().Sub(s.StartTime()).Round(10*time.Microsecond), status, kvs(s.Attributes()))
}

func offset(t, t0 time.Time) time.Duration { return t.Sub(t0).Round(10 * time.Microsecond) }

func kvs(attrs []attribute.KeyValue) string {
	var b strings.Builder
	for _, kv := range attrs {
		fmt.Fprintf(&b, " %s=%s", kv.Key, kv.Value.String())
	}
	return b.String()
}

func sortSpans(s []sdktrace.ReadOnlySpan) {
	slices.SortFunc(s, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
}
