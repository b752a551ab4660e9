package connect_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/goleak"

	"github.com/outboundhttp/outbound"
	connectexample "github.com/outboundhttp/outbound/examples/connect"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// service records every call and fails the first failN calls of each
// procedure with code.
type service struct {
	mu    sync.Mutex
	calls map[string][]call
	failN int
	code  connect.Code
}

type call struct {
	method, timeoutHeader string
	remaining             time.Duration
}

func (s *service) handle(ctx context.Context, req connect.AnyRequest, text string) (*connect.Response[connectexample.PingResponse], error) {
	c := call{method: req.HTTPMethod(), timeoutHeader: req.Header().Get(connectexample.TimeoutHeader)}
	if d, ok := ctx.Deadline(); ok {
		c.remaining = time.Until(d)
	}
	proc := req.Spec().Procedure
	s.mu.Lock()
	if s.calls == nil {
		s.calls = map[string][]call{}
	}
	s.calls[proc] = append(s.calls[proc], c)
	n := len(s.calls[proc])
	s.mu.Unlock()
	if n <= s.failN {
		return nil, connect.NewError(s.code, errors.New("try again"))
	}
	return connect.NewResponse(&connectexample.PingResponse{Text: text, TimeoutHeader: c.timeoutHeader, Remaining: c.remaining}), nil
}

func (s *service) Ping(ctx context.Context, req *connect.Request[connectexample.PingRequest]) (*connect.Response[connectexample.PingResponse], error) {
	return s.handle(ctx, req, req.Msg.Text)
}

func (s *service) Write(ctx context.Context, req *connect.Request[connectexample.PingRequest]) (*connect.Response[connectexample.PingResponse], error) {
	return s.handle(ctx, req, req.Msg.Text)
}

func (s *service) seen(proc string) []call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]call(nil), s.calls[proc]...)
}

func start(t *testing.T, svc *service, opts ...outbound.ClientOption) (*connectexample.Client, *httptest.Server, *http.Client) {
	t.Helper()
	srv := httptest.NewServer(connectexample.NewHandler(svc))
	t.Cleanup(srv.Close)
	hc, err := connectexample.HTTPClient(outbound.DefaultConfig(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hc.CloseIdleConnections)
	return connectexample.NewClient(hc, srv.URL), srv, hc
}

func ms(t *testing.T, v string) time.Duration {
	t.Helper()
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("Connect-Timeout-Ms %q: %v", v, err)
	}
	return time.Duration(n) * time.Millisecond
}

// TestBudgetTravelsAsConnectTimeout: without a deadline of the caller's, the
// server sees the standard stack's 10 s budget (less the safety margin) as
// Connect-Timeout-Ms and its handler gets that deadline; with a shorter
// deadline of the caller's, that one.
func TestBudgetTravelsAsConnectTimeout(t *testing.T) {
	tests := []struct {
		name     string
		deadline time.Duration // 0: none
		min, max time.Duration
	}{
		{"budget", 0, 8 * time.Second, outbound.DefaultConfig().TotalBudget},
		{"caller deadline", 3 * time.Second, 2 * time.Second, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &service{}
			client, _, _ := start(t, svc)
			ctx := context.Background()
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			for _, f := range []func(context.Context, string) (*connectexample.PingResponse, error){client.Ping, client.Write} {
				resp, err := f(ctx, "hi")
				if err != nil {
					t.Fatal(err)
				}
				if got := ms(t, resp.TimeoutHeader); got < tt.min || got > tt.max {
					t.Errorf("server saw Connect-Timeout-Ms %v; want in [%v, %v]", got, tt.min, tt.max)
				}
				if resp.Remaining <= 0 || resp.Remaining > tt.max {
					t.Errorf("handler deadline in %v; want in (0, %v]", resp.Remaining, tt.max)
				}
			}
		})
	}
}

// TestRetryRecomputesConnectTimeout: a retried GET carries less time than
// its first attempt, even when connect-go wrote the header from the caller's
// deadline (HTTPClient drops that value so each attempt gets its own).
func TestRetryRecomputesConnectTimeout(t *testing.T) {
	svc := &service{failN: 1, code: connect.CodeUnavailable}
	client, _, _ := start(t, svc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := client.Ping(ctx, "hi"); err != nil {
		t.Fatalf("Ping after one Unavailable: %v", err)
	}
	calls := svc.seen(connectexample.PingProcedure)
	if len(calls) < 2 {
		t.Fatalf("server saw %d Ping calls; want a retry", len(calls))
	}
	first, second := ms(t, calls[0].timeoutHeader), ms(t, calls[1].timeoutHeader)
	if first > 5*time.Second || second >= first {
		t.Errorf("Connect-Timeout-Ms: first attempt %v, retry %v; want the retry's smaller, both <= 5s", first, second)
	}
}

// TestRetriesOnlyIdempotentProcedures: Unavailable (HTTP 503 in the Connect
// protocol) is retried for Ping, marked IdempotencyNoSideEffects and sent as
// a GET, and never for Write, a POST.
func TestRetriesOnlyIdempotentProcedures(t *testing.T) {
	for _, code := range []connect.Code{connect.CodeUnavailable, connect.CodeResourceExhausted} {
		t.Run(code.String(), func(t *testing.T) {
			svc := &service{failN: 1, code: code}
			client, _, _ := start(t, svc)
			ctx := context.Background()

			if _, err := client.Ping(ctx, "hi"); err != nil {
				t.Errorf("Ping: %v; want success after a retry", err)
			}
			ping := svc.seen(connectexample.PingProcedure)
			if len(ping) < 2 || ping[0].method != http.MethodGet {
				t.Errorf("Ping: %d calls, first by %s; want a GET retried", len(ping), ping[0].method)
			}

			_, err := client.Write(ctx, "hi")
			if connect.CodeOf(err) != code {
				t.Errorf("Write: %v; want the first answer, %v, returned unretried", err, code)
			}
			if w := svc.seen(connectexample.WriteProcedure); len(w) != 1 || w[0].method != http.MethodPost {
				t.Errorf("Write: %d calls; want 1 POST", len(w))
			}
		})
	}
}

// statusSeen is a layer that records what each attempt's response looked
// like to a RoundTripper: its HTTP status and any grpc-status in the header.
type statusSeen struct {
	mu   sync.Mutex
	seen []string
}

func (s *statusSeen) middleware(next http.RoundTripper) http.RoundTripper {
	return outbound.RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(req)
		if err == nil {
			s.mu.Lock()
			s.seen = append(s.seen, strconv.Itoa(resp.StatusCode)+" grpc-status="+resp.Header.Get("Grpc-Status"))
			s.mu.Unlock()
		}
		return resp, err
	})
}

// TestGRPCWebStatusIsInvisible: over gRPC-Web the same Unavailable is an HTTP
// 200 to every RoundTripper. connect-go answers a unary error "trailers-only",
// so grpc-status=14 is in the response header, but no outbound layer reads
// it: the idempotent Ping is not retried and the breaker counts a success.
func TestGRPCWebStatusIsInvisible(t *testing.T) {
	svc := &service{failN: 1, code: connect.CodeUnavailable}
	rec := &statusSeen{}
	srv := httptest.NewServer(connectexample.NewHandler(svc))
	defer srv.Close()
	hc, err := connectexample.HTTPClient(outbound.DefaultConfig(), outbound.WithMiddlewareAfter(outbound.LayerRateLimit, rec.middleware))
	if err != nil {
		t.Fatal(err)
	}
	defer hc.CloseIdleConnections()
	client := connectexample.NewClient(hc, srv.URL, connect.WithGRPCWeb())

	_, err = client.Ping(context.Background(), "hi")
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("Ping over gRPC-Web: %v; want Unavailable, unretried", err)
	}
	if n := len(svc.seen(connectexample.PingProcedure)); n != 1 {
		t.Errorf("server saw %d Ping calls; want 1 (the RoundTripper saw no failure)", n)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.seen) != 1 || rec.seen[0] != "200 grpc-status=14" {
		t.Errorf("attempts seen by a RoundTripper: %q; want one HTTP 200 with grpc-status 14 in its header", rec.seen)
	}
	t.Logf("gRPC-Web Unavailable as a RoundTripper saw it: %q", rec.seen)
}

// TestStreamErrorIsInvisible: a Connect server stream that fails after its
// first message answers HTTP 200, and its error arrives in the end-of-stream
// message, after RoundTrip returned: the RoundTripper saw a success.
func TestStreamErrorIsInvisible(t *testing.T) {
	const watch = "/example.v1.PingService/Watch"
	mux := http.NewServeMux()
	mux.Handle(watch, connect.NewServerStreamHandler(watch,
		func(_ context.Context, _ *connect.Request[connectexample.PingRequest], st *connect.ServerStream[connectexample.PingResponse]) error {
			if err := st.Send(&connectexample.PingResponse{Text: "first"}); err != nil {
				return err
			}
			return connect.NewError(connect.CodeUnavailable, errors.New("gone"))
		}, connect.WithCodec(connectexample.JSONCodec{})))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	rec := &statusSeen{}
	hc, err := connectexample.HTTPClient(outbound.DefaultConfig(), outbound.WithMiddlewareAfter(outbound.LayerRateLimit, rec.middleware))
	if err != nil {
		t.Fatal(err)
	}
	defer hc.CloseIdleConnections()
	client := connect.NewClient[connectexample.PingRequest, connectexample.PingResponse](hc, srv.URL+watch, connect.WithCodec(connectexample.JSONCodec{}))

	stream, err := client.CallServerStream(context.Background(), connect.NewRequest(&connectexample.PingRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	n := 0
	for stream.Receive() {
		n++
	}
	if n != 1 || connect.CodeOf(stream.Err()) != connect.CodeUnavailable {
		t.Errorf("stream: %d messages, %v; want 1 and Unavailable", n, stream.Err())
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.seen) != 1 || rec.seen[0] != "200 grpc-status=" {
		t.Errorf("attempts seen by a RoundTripper: %q; want one plain HTTP 200", rec.seen)
	}
}
