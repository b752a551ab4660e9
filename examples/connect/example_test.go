package connect_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"

	"connectrpc.com/connect"

	"github.com/outboundhttp/outbound"
	connectexample "github.com/outboundhttp/outbound/examples/connect"
)

type echo struct{}

func (echo) Ping(ctx context.Context, req *connect.Request[connectexample.PingRequest]) (*connect.Response[connectexample.PingResponse], error) {
	_, hasDeadline := ctx.Deadline()
	return connect.NewResponse(&connectexample.PingResponse{Text: fmt.Sprintf("%s (%s, deadline %v)", req.Msg.Text, req.HTTPMethod(), hasDeadline)}), nil
}

func (echo) Write(ctx context.Context, req *connect.Request[connectexample.PingRequest]) (*connect.Response[connectexample.PingResponse], error) {
	return echo{}.Ping(ctx, req)
}

// A connect-go client on outbound's standard stack: the budget reaches the
// handler as its deadline, Ping goes out as a retryable GET and Write as a
// POST.
func ExampleHTTPClient() {
	srv := httptest.NewServer(connectexample.NewHandler(echo{}))
	defer srv.Close()

	hc, err := connectexample.HTTPClient(outbound.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer hc.CloseIdleConnections()
	client := connectexample.NewClient(hc, srv.URL)

	for _, call := range []func(context.Context, string) (*connectexample.PingResponse, error){client.Ping, client.Write} {
		resp, err := call(context.Background(), "hello")
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(resp.Text)
	}
	// Output:
	// hello (GET, deadline true)
	// hello (POST, deadline true)
}
