# outbound — build, test and measure.
# `make test` is what CI runs (.ci/run): it installs and starts what the tests
# need (a loopback redis-server for transport/ratelimit/redisrate, Debian's
# chromium for cmd/outbound-chaos's HTML scorecard, and Jaeger from tools/jaeger
# on loopback for transport/tracing/otelsetup's end-to-end test, built in the
# background at low priority while the other tests run), runs every test of
# every module but bench/ with the race detector (scripts/each-module.sh: the
# root module, cmd/outbound-chaos, examples, examples/aws, examples/connect, tools/jaeger,
# transport/ratelimit/redisrate, transport/tracing/otelsetup), stops what it
# started, and checks the module graph an importer of outbound gets
# (scripts/check-module-graph.sh).
#
# with-jaeger.sh is the outermost wrapper, so Jaeger's cold build (about
# 1 000 CPU-seconds with optimization, which build_jaeger leaves out) starts first and overlaps chromium's
# download; -timeout 30m because the end-to-end test waits for that build
# (until its test deadline), and on a fresh 2-core machine the build can end
# after the other modules' tests: a 10m package timeout failed it there.

GO            ?= go
STATICCHECK   := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BENCHSTAT     := golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
REDIS_PORT    ?= 6391
FUZZTIME      ?= 10s

.PHONY: all test demo bench lint fuzz soak

all: lint test

test:
	@bash scripts/with-jaeger.sh bash scripts/with-redis.sh $(REDIS_PORT) bash scripts/with-chromium.sh bash scripts/each-module.sh -x bench $(GO) test -race -count=1 -timeout 30m ./...
	@bash scripts/check-module-graph.sh

demo:
	@if [ -d cmd/outbound-chaos ]; then cd cmd/outbound-chaos && $(GO) run . -html ../../scorecard.html; else $(GO) test -count=1 -run Example -v ./... | grep -E '^(=== RUN|--- |ok|FAIL)'; fi

bench:
	@bash scripts/bench.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@bash scripts/each-module.sh $(GO) vet ./...
	@bash scripts/each-module.sh $(GO) run $(STATICCHECK) ./...
	@bash scripts/each-module.sh $(GO) mod tidy -diff

fuzz:
	@bash scripts/fuzz.sh $(FUZZTIME)

soak:
	OUTBOUND_SOAK=1 $(GO) test -race -count=1 -run Soak -timeout 30m ./...
