package contracttest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/outboundhttp/outbound/internal/callctx"
	"github.com/outboundhttp/outbound/internal/contracttest"
)

func TestRecorder(t *testing.T) {
	rec := &contracttest.Recorder{}
	ctx := callctx.WithRecorder(context.Background(), rec)
	callctx.Emit(ctx, callctx.Event{Kind: callctx.KindRetry, Attempt: 1})
	callctx.Emit(ctx, callctx.Event{Kind: callctx.KindRetryRefused, Attempt: 2})
	evs := rec.Events()
	want := []callctx.Event{{Kind: callctx.KindRetry, Attempt: 1}, {Kind: callctx.KindRetryRefused, Attempt: 2}}
	if !reflect.DeepEqual(evs, want) {
		t.Fatalf("Events() = %+v; want %+v", evs, want)
	}
	evs[0].Attempt = 9
	if rec.Events()[0].Attempt != 1 {
		t.Error("Events() shares its slice with the recorder")
	}
}

func TestGate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := contracttest.NewGate(503, 200)
		send := func(ctx context.Context, key string) (*http.Response, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, contracttest.URL, strings.NewReader("x"))
			req.Header.Set("Idempotency-Key", key)
			return g.RoundTrip(req)
		}
		var got []int
		for _, k := range []string{"a", "", "c"} {
			resp, err := send(context.Background(), k)
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := io.ReadAll(resp.Body); string(b) != "ok" {
				t.Errorf("body %q; want ok", b)
			}
			got = append(got, resp.StatusCode)
		}
		if want := []int{503, 200, 200}; !reflect.DeepEqual(got, want) {
			t.Errorf("statuses %v; want %v (the last one repeated)", got, want)
		}
		if keys := g.Header("Idempotency-Key"); !reflect.DeepEqual(keys, []string{"a", "", "c"}) {
			t.Errorf("Header = %q; want [a  c]", keys)
		}

		hold := make(chan struct{})
		g.Set(201, hold)
		ctx, cancel := context.WithCancel(context.Background())
		errs := make(chan error, 1)
		go func() { _, err := send(ctx, ""); errs <- err }()
		synctest.Wait() // held at the gate
		cancel()
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Errorf("held request after cancel: %v; want context.Canceled", err)
		}
		done := make(chan int, 1)
		go func() { resp, _ := send(context.Background(), ""); done <- resp.StatusCode }()
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("answered while held")
		default:
		}
		close(hold)
		if code := <-done; code != 201 {
			t.Errorf("status after release %d; want 201", code)
		}
		if n := g.Calls(); n != 5 {
			t.Errorf("Calls() = %d; want 5", n)
		}
	})
}
