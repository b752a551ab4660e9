package requestid_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/outboundhttp/outbound/transport/requestid"
)

// The client side: the request carries the ID of its context, or a new UUID.
func Example() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("upstream saw:", r.Header.Get("X-Request-ID"))
	}))
	defer upstream.Close()

	client := &http.Client{Transport: requestid.NewTransport(nil)}
	defer client.CloseIdleConnections()

	ctx := requestid.NewContext(context.Background(), "order-42")
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, upstream.URL, nil)
	resp, err := client.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	// Output: upstream saw: order-42
}

// The server side: Handler accepts (or replaces) the inbound ID, and
// LogHandler adds it to every record logged with the request's context.
func ExampleHandler() {
	logger := slog.New(requestid.LogHandler(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // keep the output stable
			}
			return a
		},
	})))
	h := requestid.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logger.InfoContext(r.Context(), "hello")
		io.WriteString(w, "ok")
	}))

	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-Request-ID", "abc-123")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	fmt.Println("response header:", w.Header().Get("X-Request-ID"))

	r.Header.Set("X-Request-ID", "evil\" injected=1")
	requestid.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := requestid.FromContext(r.Context())
		fmt.Println("hostile ID replaced:", id != "evil\" injected=1", requestid.Valid(id))
	})).ServeHTTP(httptest.NewRecorder(), r)
	// Output:
	// level=INFO msg=hello request_id=abc-123
	// response header: abc-123
	// hostile ID replaced: true true
}

// Time-ordered IDs (UUID version 7) instead of random ones.
func ExampleWithGenerator() {
	rt := requestid.NewTransport(nil, requestid.WithGenerator(requestid.UUIDv7), requestid.WithHeader("X-Correlation-ID"))
	_ = &http.Client{Transport: rt}
	fmt.Println(len(requestid.UUIDv7()))
	// Output: 36
}
