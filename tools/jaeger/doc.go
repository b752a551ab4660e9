// Package jaeger pins the Jaeger that make test starts for the end-to-end
// tracing test, and holds its configuration (config.yaml).
//
// Jaeger v1.76.0 (github.com/jaegertracing/jaeger/cmd/jaeger, the
// OpenTelemetry Collector based Jaeger v2) is a tool of this module, so its
// hundreds of requirements stay out of every other module's go.mod:
//
//	cd tools/jaeger && go tool jaeger --config config.yaml
//
// scripts/with-jaeger.sh builds it (or takes it from the build cache),
// starts it on loopback ports and stops it afterwards. The package has no
// code; its test checks that the configuration listens on loopback only.
package jaeger
