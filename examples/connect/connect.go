// Package connect shows a connect-go client (connectrpc.com/connect) on
// outbound's standard stack, talking to a Connect server: the call's
// remaining budget travels as Connect-Timeout-Ms and becomes the handler's
// deadline, and retries happen only for procedures marked idempotent
// (connect.IdempotencyNoSideEffects, sent as GET with connect.WithHTTPGet).
//
// The service is defined without protoc: plain Go structs and a JSON codec,
// with connect.NewUnaryHandler and connect.NewClient, which is all a Connect
// unary call needs.
//
// What a RoundTripper cannot see: over the gRPC and gRPC-Web protocols
// (connect.WithGRPC, connect.WithGRPCWeb) every answer is HTTP 200 and the
// status travels as grpc-status: in the response header only for a
// "trailers-only" answer (an error before any message), otherwise in the HTTP
// trailers or the body's last frame, after RoundTrip has returned. A Connect
// stream's error is likewise in its end-of-stream message. outbound's retry,
// breaker and adaptive limit read all of these as successes, and none reads
// grpc-status. Use the Connect protocol (the default) for unary calls: its
// errors are HTTP statuses (Unavailable is 503, ResourceExhausted 429).
// docs/connect.md has the details.
package connect

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"connectrpc.com/connect"

	"github.com/outboundhttp/outbound"
)

// Procedure names of the example service.
const (
	// PingProcedure has no side effects: clients send it as a GET, so
	// outbound retries it.
	PingProcedure = "/example.v1.PingService/Ping"
	// WriteProcedure has side effects: sent as a POST, never retried.
	WriteProcedure = "/example.v1.PingService/Write"
)

// PingRequest is the request of both procedures.
type PingRequest struct {
	Text string `json:"text"`
}

// PingResponse echoes the text and reports the deadline the handler saw.
type PingResponse struct {
	Text string `json:"text"`
	// TimeoutHeader is the Connect-Timeout-Ms the request carried ("" when
	// none).
	TimeoutHeader string `json:"timeout_header"`
	// Remaining is the time left before the handler's context deadline,
	// when it was asked; 0 when the context had none.
	Remaining time.Duration `json:"remaining"`
}

// Service is the server side: two unary procedures.
type Service interface {
	Ping(context.Context, *connect.Request[PingRequest]) (*connect.Response[PingResponse], error)
	Write(context.Context, *connect.Request[PingRequest]) (*connect.Response[PingResponse], error)
}

// JSONCodec marshals plain Go values with encoding/json under the codec name
// "json" (content type application/json), in place of connect's protobuf
// JSON codec. It is stable (struct fields in order, map keys sorted), which
// connect needs to put a message in a GET's query string.
type JSONCodec struct{}

// Name implements connect.Codec.
func (JSONCodec) Name() string { return "json" }

// Marshal implements connect.Codec.
func (JSONCodec) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal implements connect.Codec.
func (JSONCodec) Unmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// MarshalStable gives the same bytes for the same value, for GET requests.
func (JSONCodec) MarshalStable(v any) ([]byte, error) { return json.Marshal(v) }

// IsBinary reports false: the output is text.
func (JSONCodec) IsBinary() bool { return false }

// NewHandler returns an http.Handler serving svc's procedures.
func NewHandler(svc Service, opts ...connect.HandlerOption) http.Handler {
	base := []connect.HandlerOption{connect.WithCodec(JSONCodec{})}
	mux := http.NewServeMux()
	mux.Handle(PingProcedure, connect.NewUnaryHandler(PingProcedure, svc.Ping,
		append(append(base, connect.WithIdempotency(connect.IdempotencyNoSideEffects)), opts...)...))
	mux.Handle(WriteProcedure, connect.NewUnaryHandler(WriteProcedure, svc.Write, append(base, opts...)...))
	return mux
}

// Client calls the example service.
type Client struct {
	ping  *connect.Client[PingRequest, PingResponse]
	write *connect.Client[PingRequest, PingResponse]
}

// NewClient returns a client of the service at baseURL over hc (outbound's
// client from HTTPClient). Ping is marked IdempotencyNoSideEffects and sent
// as a GET; Write is a POST.
func NewClient(hc connect.HTTPClient, baseURL string, opts ...connect.ClientOption) *Client {
	base := []connect.ClientOption{connect.WithCodec(JSONCodec{})}
	return &Client{
		ping: connect.NewClient[PingRequest, PingResponse](hc, baseURL+PingProcedure,
			append(append(base, connect.WithIdempotency(connect.IdempotencyNoSideEffects), connect.WithHTTPGet()), opts...)...),
		write: connect.NewClient[PingRequest, PingResponse](hc, baseURL+WriteProcedure, append(base, opts...)...),
	}
}

// Ping calls PingProcedure.
func (c *Client) Ping(ctx context.Context, text string) (*PingResponse, error) {
	resp, err := c.ping.CallUnary(ctx, connect.NewRequest(&PingRequest{Text: text}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// Write calls WriteProcedure.
func (c *Client) Write(ctx context.Context, text string) (*PingResponse, error) {
	resp, err := c.write.CallUnary(ctx, connect.NewRequest(&PingRequest{Text: text}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// TimeoutHeader is the header in which the Connect protocol carries a
// call's timeout, in whole milliseconds.
const TimeoutHeader = "Connect-Timeout-Ms"

// HTTPClient returns outbound's standard stack from cfg for connect-go: the
// budget layer's deadline header is Connect-Timeout-Ms, so every attempt
// tells the server the time left of the whole call (the caller's deadline or
// the budget, whichever ends first, less a safety margin), and a retry
// carries less than the first attempt did.
//
// connect-go writes Connect-Timeout-Ms itself when the caller's context has
// a deadline, once, before the stack sees the request; the deadline layer
// keeps a header the caller set, so a retry would resend the first attempt's
// value. HTTPClient therefore drops connect's value above the retry layer and
// lets the deadline layer, below it, compute the header for each attempt.
func HTTPClient(cfg outbound.Config, opts ...outbound.ClientOption) (*http.Client, error) {
	cfg.DeadlineHeader = TimeoutHeader
	all := []outbound.ClientOption{outbound.WithMiddlewareAfter(outbound.LayerBudget, dropTimeoutHeader)}
	return outbound.NewClient(cfg, append(all, opts...)...)
}

// dropTimeoutHeader removes connect-go's own Connect-Timeout-Ms; the budget
// layer above has already folded the caller's deadline into the context.
func dropTimeoutHeader(next http.RoundTripper) http.RoundTripper {
	return outbound.RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
		if _, ok := req.Header[TimeoutHeader]; !ok {
			return next.RoundTrip(req)
		}
		r := req.Clone(req.Context()) // never modify the caller's request
		r.Header.Del(TimeoutHeader)
		return next.RoundTrip(r)
	})
}
