// Package otelsetup builds an OpenTelemetry TracerProvider and MeterProvider
// for an application from the standard OTEL_* environment variables, with the
// OTLP/HTTP exporters or a console (stdout) exporter, and returns one Shutdown
// that flushes them — the setup the reference article writes by hand.
//
// It is for main packages. Libraries, transport/tracing included, only take
// providers as options and never install global ones; Setup does not either,
// unless asked with [WithGlobal].
//
// otelsetup is a module of its own, so its exporters (and the gRPC and OTLP
// protobuf modules they require) are in the module graph of the programs that
// import it, not of every program that imports outbound.
//
//	p, err := otelsetup.Setup(ctx)
//	if err != nil { ... }
//	defer p.Shutdown(context.Background())
//	client := outbound.Wrap(http.DefaultClient,
//		tracing.Middleware(p.TracingOptions()...), ...,
//		tracing.AttemptMiddleware(p.TracingOptions()...))
//
// Environment variables read by Setup itself:
//
//	OTEL_SDK_DISABLED=true            no-op providers, nothing exported
//	OTEL_TRACES_EXPORTER              otlp, console or none (a comma-separated list is allowed)
//	OTEL_METRICS_EXPORTER             otlp, console or none
//	OTEL_EXPORTER_OTLP_PROTOCOL       http/protobuf only (also the _TRACES_ and _METRICS_ forms)
//	OTEL_PROPAGATORS                  tracecontext, baggage or none; default "tracecontext,baggage"
//
// When OTEL_TRACES_EXPORTER (OTEL_METRICS_EXPORTER) is unset, the signal is
// exported with OTLP if OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (..._METRICS_ENDPOINT) is set, else with
// the exporter given by [WithDefaultExporter], else not at all: an
// application that configured nothing does not try to reach localhost:4318.
//
// Read by the SDK and the exporters themselves, and so honoured too: the
// OTLP endpoint, headers, timeout, compression and certificate variables,
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER and its
// argument, OTEL_BSP_* (batching) and OTEL_METRIC_EXPORT_INTERVAL/TIMEOUT.
package otelsetup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/outboundhttp/outbound/transport/tracing"
)

// Providers is what Setup built. Its fields are safe for concurrent use; call
// Shutdown once the application stops sending requests.
type Providers struct {
	// TracerProvider is an *sdktrace.TracerProvider when traces are
	// exported, a no-op provider otherwise.
	TracerProvider trace.TracerProvider
	// MeterProvider is an *sdkmetric.MeterProvider when metrics are
	// exported, a no-op provider otherwise.
	MeterProvider metric.MeterProvider
	// Propagator is the one OTEL_PROPAGATORS names (default: W3C trace
	// context and baggage).
	Propagator propagation.TextMapPropagator

	once     sync.Once
	err      error
	shutdown []func(context.Context) error
}

// TracingOptions returns the options that make transport/tracing use these
// providers and this propagator.
func (p *Providers) TracingOptions() []tracing.Option {
	return []tracing.Option{
		tracing.WithTracerProvider(p.TracerProvider),
		tracing.WithMeterProvider(p.MeterProvider),
		tracing.WithPropagators(p.Propagator),
	}
}

// Shutdown flushes what is buffered and stops the exporters, within ctx's
// deadline. Only the first call does the work; later calls return its
// result.
func (p *Providers) Shutdown(ctx context.Context) error {
	p.once.Do(func() {
		var errs []error
		for _, f := range p.shutdown {
			errs = append(errs, f(ctx))
		}
		p.err = errors.Join(errs...)
	})
	return p.err
}

// Option configures Setup.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	global     bool
	writer     io.Writer
	res        *resource.Resource
	defaultExp string
}

// WithGlobal makes Setup also install its providers and propagator as the
// OpenTelemetry globals (otel.SetTracerProvider, SetMeterProvider,
// SetTextMapPropagator), for other instrumentation that reads them.
// Default: globals are left alone.
func WithGlobal() Option { return optionFunc(func(c *config) { c.global = true }) }

// WithConsoleWriter sets where the console exporters write.
// Default: os.Stdout. A nil w is ignored.
func WithConsoleWriter(w io.Writer) Option {
	return optionFunc(func(c *config) {
		if w != nil {
			c.writer = w
		}
	})
}

// WithResource merges r over the resource built from the environment
// (service.name, OTEL_RESOURCE_ATTRIBUTES, SDK attributes). Default: that
// resource alone.
func WithResource(r *resource.Resource) Option { return optionFunc(func(c *config) { c.res = r }) }

// WithDefaultExporter names the exporter ("otlp", "console" or "none") used
// for a signal whose OTEL_*_EXPORTER variable is unset and for which no OTLP
// endpoint is configured; for example "console" during development.
// Default: "none". It panics on another name.
func WithDefaultExporter(name string) Option {
	switch name {
	case "otlp", "console", "none":
	default:
		panic(fmt.Sprintf("otelsetup: WithDefaultExporter(%q): want otlp, console or none", name))
	}
	return optionFunc(func(c *config) { c.defaultExp = name })
}

// Setup builds the providers from the environment and the options. On error
// nothing is left running.
func Setup(ctx context.Context, opts ...Option) (*Providers, error) {
	c := &config{writer: os.Stdout, defaultExp: "none"}
	for _, o := range opts {
		if o != nil {
			o.apply(c)
		}
	}
	p := &Providers{
		TracerProvider: tracenoop.NewTracerProvider(),
		MeterProvider:  metricnoop.NewMeterProvider(),
	}
	prop, err := propagators(os.Getenv("OTEL_PROPAGATORS"))
	if err != nil {
		return nil, err
	}
	p.Propagator = prop
	if strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED")), "true") {
		c.install(p)
		return p, nil
	}
	res, err := c.resource(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.setupTraces(ctx, p, res); err != nil {
		p.Shutdown(ctx)
		return nil, err
	}
	if err := c.setupMetrics(ctx, p, res); err != nil {
		p.Shutdown(ctx)
		return nil, err
	}
	c.install(p)
	return p, nil
}

// resource returns the SDK's default resource merged with the environment's
// (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME) and WithResource's.
func (c *config) resource(ctx context.Context) (*resource.Resource, error) {
	// resource.Default reads the environment only once per process; read it
	// again so the resource matches the environment of this call.
	env, err := resource.New(ctx, resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("otelsetup: resource: %w", err)
	}
	res, err := resource.Merge(resource.Default(), env)
	if err == nil && c.res != nil {
		res, err = resource.Merge(res, c.res)
	}
	if err != nil {
		return nil, fmt.Errorf("otelsetup: resource: %w", err)
	}
	return res, nil
}

// setupTraces builds the trace exporters OTEL_TRACES_EXPORTER names and, when
// there are any, a TracerProvider on them.
func (c *config) setupTraces(ctx context.Context, p *Providers, res *resource.Resource) error {
	names, err := exporters("TRACES", c.defaultExp)
	if err != nil || len(names) == 0 {
		return err
	}
	// Exporters first, processors (which start goroutines) only once every
	// exporter was built, so a failure leaves nothing running.
	var batched, synced []sdktrace.SpanExporter
	for _, name := range names {
		var e sdktrace.SpanExporter
		var err error
		switch name {
		case "otlp":
			if e, err = otlptracehttp.New(ctx); err != nil {
				err = fmt.Errorf("otelsetup: OTLP trace exporter: %w", err)
			}
		case "console":
			if e, err = stdouttrace.New(stdouttrace.WithWriter(c.writer)); err != nil {
				err = fmt.Errorf("otelsetup: console trace exporter: %w", err)
			}
		}
		if err != nil {
			for _, e := range append(batched, synced...) {
				e.Shutdown(ctx)
			}
			return err
		}
		if name == "otlp" {
			batched = append(batched, e)
		} else {
			synced = append(synced, e)
		}
	}
	topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	for _, e := range batched {
		topts = append(topts, sdktrace.WithBatcher(e))
	}
	for _, e := range synced {
		// Synchronous, so a developer sees each span as it ends.
		topts = append(topts, sdktrace.WithSyncer(e))
	}
	tp := sdktrace.NewTracerProvider(topts...)
	p.TracerProvider = tp
	p.shutdown = append(p.shutdown, tp.Shutdown)
	return nil
}

// setupMetrics builds the metric exporters OTEL_METRICS_EXPORTER names and,
// when there are any, a MeterProvider reading them periodically.
func (c *config) setupMetrics(ctx context.Context, p *Providers, res *resource.Resource) error {
	names, err := exporters("METRICS", c.defaultExp)
	if err != nil || len(names) == 0 {
		return err
	}
	var exps []sdkmetric.Exporter
	for _, name := range names {
		var e sdkmetric.Exporter
		var err error
		switch name {
		case "otlp":
			if e, err = otlpmetrichttp.New(ctx); err != nil {
				err = fmt.Errorf("otelsetup: OTLP metric exporter: %w", err)
			}
		case "console":
			if e, err = stdoutmetric.New(stdoutmetric.WithWriter(c.writer)); err != nil {
				err = fmt.Errorf("otelsetup: console metric exporter: %w", err)
			}
		}
		if err != nil {
			for _, e := range exps {
				e.Shutdown(ctx)
			}
			return err
		}
		exps = append(exps, e)
	}
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res)}
	for _, e := range exps {
		// NewPeriodicReader starts a goroutine: only after every exporter exists.
		mopts = append(mopts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(e)))
	}
	mp := sdkmetric.NewMeterProvider(mopts...)
	p.MeterProvider = mp
	p.shutdown = append(p.shutdown, mp.Shutdown)
	return nil
}

func (c *config) install(p *Providers) {
	if c.global {
		otel.SetTracerProvider(p.TracerProvider)
		otel.SetMeterProvider(p.MeterProvider)
		otel.SetTextMapPropagator(p.Propagator)
	}
}

// exporters returns the exporters for signal ("TRACES" or "METRICS"), none
// meaning an empty list, after checking that OTLP uses HTTP.
func exporters(signal, def string) ([]string, error) {
	env := "OTEL_" + signal + "_EXPORTER"
	v := strings.TrimSpace(os.Getenv(env))
	if v == "" {
		v = def
		if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != "" {
			v = "otlp"
		}
	}
	var out []string
	for _, name := range strings.Split(v, ",") {
		switch name = strings.ToLower(strings.TrimSpace(name)); name {
		case "none":
			return nil, nil
		case "otlp":
			proto := os.Getenv("OTEL_EXPORTER_OTLP_" + signal + "_PROTOCOL")
			if proto == "" {
				proto = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
			}
			if proto != "" && proto != "http/protobuf" {
				return nil, fmt.Errorf("otelsetup: OTLP protocol %q is not supported: use http/protobuf", proto)
			}
			out = append(out, name)
		case "console":
			out = append(out, name)
		default:
			return nil, fmt.Errorf("otelsetup: %s=%q: exporter %q is not supported (otlp, console, none)", env, v, name)
		}
	}
	return out, nil
}

func propagators(v string) (propagation.TextMapPropagator, error) {
	if strings.TrimSpace(v) == "" {
		v = "tracecontext,baggage"
	}
	var ps []propagation.TextMapPropagator
	for _, name := range strings.Split(v, ",") {
		switch name = strings.ToLower(strings.TrimSpace(name)); name {
		case "tracecontext":
			ps = append(ps, propagation.TraceContext{})
		case "baggage":
			ps = append(ps, propagation.Baggage{})
		case "none":
			return propagation.NewCompositeTextMapPropagator(), nil
		default:
			return nil, fmt.Errorf("otelsetup: OTEL_PROPAGATORS=%q: propagator %q is not supported (tracecontext, baggage, none)", v, name)
		}
	}
	return propagation.NewCompositeTextMapPropagator(ps...), nil
}
