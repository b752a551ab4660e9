package otelsetup_test

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/outboundhttp/outbound/transport/tracing"
	"github.com/outboundhttp/outbound/transport/tracing/otelsetup"
)

// Setup in a main package: exporters from OTEL_* (for example
// OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318), console output during
// development when nothing is configured, and a flush on the way out.
func ExampleSetup() {
	ctx := context.Background()
	p, err := otelsetup.Setup(ctx, otelsetup.WithDefaultExporter("none"))
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			log.Print(err)
		}
	}()

	client := &http.Client{Transport: tracing.NewTransport(
		tracing.NewAttemptTransport(nil, p.TracingOptions()...),
		p.TracingOptions()...)}
	_ = client
}
