package tracing

import (
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the tracer and meter this package
// uses for its own spans and metrics. The attempt spans and
// http.client.request.duration keep otelhttp's scope.
const ScopeName = "github.com/outboundhttp/outbound/transport/tracing"

// Option configures the layers of this package. The same options are accepted
// by [Middleware], [NewTransport], [AttemptMiddleware], [NewAttemptTransport]
// and [CircuitObserver]; an option that does not concern a layer is ignored
// by it (WithPropagators means nothing to the logical layer, which injects no
// headers).
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	tp           trace.TracerProvider // nil: see WithTracerProvider
	mp           metric.MeterProvider // nil: the global provider
	propagators  propagation.TextMapPropagator
	redactQuery  bool
	otelhttpOpts []otelhttp.Option
}

func newConfig(opts []Option) *config {
	c := &config{redactQuery: true}
	for _, o := range opts {
		if o != nil {
			o.apply(c)
		}
	}
	return c
}

// WithTracerProvider sets the TracerProvider spans are created with.
//
// Default: for the logical layer, the global provider (otel.GetTracerProvider,
// resolved when the layer is built; the global delegate follows a later
// otel.SetTracerProvider). For the attempt layer, as in otelhttp: the provider
// of the span in the request context (so attempts follow the logical span's
// provider without configuring it twice), else the global one. A nil tp is
// ignored.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) {
		if tp != nil {
			c.tp = tp
		}
	})
}

// WithMeterProvider sets the MeterProvider the metrics are recorded with,
// including otelhttp's http.client.request.duration.
//
// Default: the global provider (otel.GetMeterProvider). A nil mp is ignored.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) {
		if mp != nil {
			c.mp = mp
		}
	})
}

// WithPropagators sets the propagator that injects the trace context of each
// attempt span into the request headers (attempt layer only).
//
// Default: the global propagator (otel.GetTextMapPropagator), as in otelhttp;
// note that the global default propagates nothing until the application sets
// one, for example propagation.TraceContext{}. A nil p is ignored.
func WithPropagators(p propagation.TextMapPropagator) Option {
	return optionFunc(func(c *config) {
		if p != nil {
			c.propagators = p
		}
	})
}

// WithRedactQuery says whether the values of the query string are replaced
// by "REDACTED" in the url.full attribute of attempt spans (keys are kept:
// "?api_key=REDACTED&page=REDACTED"); the fragment is dropped as well.
// Query strings often carry API keys, signatures and tokens, and url.full is
// exported to systems with wider access than the service itself.
//
// Default: true. Userinfo ("user:password@") is always removed (otelhttp
// already does it).
func WithRedactQuery(redact bool) Option {
	return optionFunc(func(c *config) { c.redactQuery = redact })
}

// WithOTelHTTPOptions passes further options to otelhttp.NewTransport in the
// attempt layer, for example otelhttp.WithClientTrace or otelhttp.WithFilter.
// They are applied before this package's own, so the tracer and meter
// providers, the propagator and the span name formatter set by this package
// win.
//
// Default: none.
func WithOTelHTTPOptions(opts ...otelhttp.Option) Option {
	return optionFunc(func(c *config) {
		c.otelhttpOpts = append(c.otelhttpOpts, opts...)
	})
}
