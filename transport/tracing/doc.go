// Package tracing instruments outbound HTTP calls with OpenTelemetry: one
// CLIENT span per wire attempt (through otelhttp), one INTERNAL span around
// the whole logical call carrying its retries, waits and refusals as events,
// and the metrics an operator needs to see why calls are slow or failing.
//
// It provides two layers, meant to sit at both ends of a resilience chain:
//
//	client := outbound.Wrap(http.DefaultClient,
//		requestid.Middleware(),
//		tracing.Middleware(),        // logical span: the whole call
//		budget.Middleware(),
//		retry.Middleware(),
//		circuit.Middleware(),
//		ratelimit.Middleware(),
//		tracing.AttemptMiddleware(), // one CLIENT span per attempt
//	)
//
// [Middleware] starts the logical span and installs a recorder in the request
// context; the retry, budget, rate-limit and circuit layers report what they
// do to it, and it turns each report into a span event and a metric.
// [AttemptMiddleware] wraps otelhttp.NewTransport, so every attempt gets the
// HTTP semantic-convention attributes, the W3C trace context on the wire and
// the http.client.request.duration histogram, and adds what otelhttp cannot
// know: http.request.resend_count on resends, the request ID, and a span name
// built from the route template given with [WithRoute].
//
// Providers default to the global ones (otel.GetTracerProvider,
// otel.GetMeterProvider, otel.GetTextMapPropagator) and are injectable with
// [WithTracerProvider], [WithMeterProvider] and [WithPropagators]; the package
// never installs a global provider. Telemetry never contains URL userinfo,
// query values (unless [WithRedactQuery](false)), nor any request header such
// as Authorization, Cookie or an API key.
//
// The metric names, units and attributes are listed in docs/telemetry.md.
package tracing
