package hedge_test

import (
	"context"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/outboundhttp/outbound"
	"github.com/outboundhttp/outbound/transport/hedge"
	"github.com/outboundhttp/outbound/transport/tracing"
)

// TestTelemetry: between the two tracing layers, every attempt span says
// whether it is the original or a hedge, the logical span gets an event per
// hedge and one for the winner, and the hedge metrics count hedges, wins and
// hedges the budget suppressed.
func TestTelemetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		spans := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		defer tp.Shutdown(context.Background())
		defer mp.Shutdown(context.Background())
		opts := []tracing.Option{tracing.WithTracerProvider(tp), tracing.WithMeterProvider(mp)}

		// The first attempt of every call hangs; hedges answer at once. The
		// budget allows one hedge: the second call's is suppressed.
		f := newFake(func(i int, r *http.Request) answer {
			if i == 1 {
				return answer{d: time.Millisecond, status: 200}
			}
			return answer{d: 50 * time.Millisecond, status: 200}
		})
		rt := outbound.Chain(f,
			tracing.Middleware(opts...),
			hedge.Middleware(hedge.WithDelay(delay), hedge.WithBudget(0, 10*time.Second, 0.1)),
			tracing.AttemptMiddleware(opts...),
		)
		for range 2 {
			resp, err := rt.RoundTrip(get(t, context.Background()))
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
		}
		synctest.Wait()

		var types []string
		var logical []sdktrace.ReadOnlySpan
		for _, s := range spans.Ended() {
			if s.Parent().IsValid() && s.SpanKind().String() == "client" {
				for _, a := range s.Attributes() {
					if a.Key == tracing.AttrAttemptType {
						types = append(types, a.Value.AsString())
					}
				}
			} else {
				logical = append(logical, s)
			}
		}
		if len(types) != 3 || count(types, "original") != 2 || count(types, "hedge") != 1 {
			t.Errorf("attempt types %v; want two originals and a hedge", types)
		}
		if len(logical) != 2 {
			t.Fatalf("%d logical spans; want 2", len(logical))
		}
		var names []string
		for _, s := range logical {
			for _, ev := range s.Events() {
				names = append(names, ev.Name)
			}
		}
		for _, want := range []string{"outbound.hedge", "outbound.hedge_won", "outbound.hedge_suppressed"} {
			if count(names, want) != 1 {
				t.Errorf("logical span events %v; want one %s", names, want)
			}
		}

		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		got := map[string]int64{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if d, ok := m.Data.(metricdata.Sum[int64]); ok {
					for _, p := range d.DataPoints {
						reason, _ := p.Attributes.Value(attribute.Key("outbound.reason"))
						got[m.Name+"/"+reason.AsString()] += p.Value
					}
				}
			}
		}
		for name, want := range map[string]int64{
			tracing.MetricHedges + "/":                1,
			tracing.MetricHedgeWins + "/hedge":        1,
			tracing.MetricHedgeSuppressed + "/budget": 1,
		} {
			if got[name] != want {
				t.Errorf("%s = %d; want %d (all: %v)", name, got[name], want, got)
			}
		}
	})
}

func count(l []string, s string) int {
	n := 0
	for _, x := range l {
		if x == s {
			n++
		}
	}
	return n
}
