package tracing

import (
	"context"
	"reflect"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// A span started where nothing can record it costs allocations (the
// global provider's non-recording span, the context that carries it) for
// nothing: its only effect is the span context it carries, which is the
// parent's. So both layers skip starting one when the provider is known
// never to record and the call's context carries no valid span context
// (then the span would carry an invalid one, which propagates nothing, and
// nothing below can tell the difference: trace.SpanFromContext returns a
// non-recording span either way, and otelhttp picks the global provider
// either way). Metrics are decided separately.

// defaultGlobal is the type of OpenTelemetry's default global
// TracerProvider, the one otel.GetTracerProvider returns until
// otel.SetTracerProvider installs another: its tracers delegate to the
// installed provider from then on, and record nothing before. nil if the
// global provider, when this package was initialized, was not that default
// (an SDK installed in an earlier init): then the global is never taken for
// silent. TestDefaultGlobalRecognized fails if an OpenTelemetry upgrade
// changes the type.
var defaultGlobal = otelDefault(otel.GetTracerProvider(), "tracerProvider")

// otelDefault returns the type of v if it is the OpenTelemetry default
// global implementation named name (a pointer to
// go.opentelemetry.io/otel/internal/global.name), else nil.
func otelDefault(v any, name string) reflect.Type {
	t := reflect.TypeOf(v)
	if t != nil && t.Kind() == reflect.Pointer &&
		t.Elem().PkgPath() == "go.opentelemetry.io/otel/internal/global" && t.Elem().Name() == name {
		return t
	}
	return nil
}

// silence says how a layer tells that its spans would not record.
type silence uint8

const (
	silenceNever  silence = iota // a provider that may record: always start the span
	silenceAlways                // the no-op provider
	silenceGlobal                // the global provider: silent while no SDK is installed behind it
)

// silenceOf classifies the provider a layer was given (nil: the global
// one, read per call).
func silenceOf(tp trace.TracerProvider) silence {
	switch tp.(type) {
	case nil:
		return silenceGlobal
	case noop.TracerProvider, *noop.TracerProvider:
		return silenceAlways
	}
	if defaultGlobal != nil && reflect.TypeOf(tp) == defaultGlobal {
		return silenceGlobal // the default global itself, passed explicitly
	}
	return silenceNever
}

// silent reports whether a span started now under ctx would record nothing
// and carry nothing (see above).
func (s silence) silent(ctx context.Context) bool {
	switch s {
	case silenceAlways:
	case silenceGlobal:
		if defaultGlobal == nil || reflect.TypeOf(otel.GetTracerProvider()) != defaultGlobal {
			return false
		}
	default:
		return false
	}
	return !trace.SpanContextFromContext(ctx).IsValid()
}
