package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/outboundhttp/outbound"
	"github.com/outboundhttp/outbound/examples/sdk"
	"github.com/outboundhttp/outbound/examples/sdk/usersapi"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testConfig is the default stack with short backoff and no tracing, so the
// tests are fast; Retry-After is still honoured (MaxRetryAfter's default).
func testConfig() outbound.Config {
	cfg := outbound.DefaultConfig()
	cfg.BackoffInitial = 5 * time.Millisecond
	cfg.BackoffMax = 20 * time.Millisecond
	cfg.TracingEnabled = false
	return cfg
}

// seen is one request as the upstream saw it.
type seen struct {
	method, path   string
	requestID, key string
	body           string
	at             time.Time
}

// upstream is a Users API that answers each request with the next scripted
// failure while there is one, then with success.
type upstream struct {
	mu       sync.Mutex
	failures []func(http.ResponseWriter) // one per request, in order
	reqs     []seen
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.reqs = append(u.reqs, seen{
		method: r.Method, path: r.URL.Path,
		requestID: r.Header.Get("X-Request-ID"), key: r.Header.Get("Idempotency-Key"),
		body: string(body), at: time.Now(),
	})
	var fail func(http.ResponseWriter)
	if len(u.failures) > 0 {
		fail, u.failures = u.failures[0], u.failures[1:]
	}
	u.mu.Unlock()
	if fail != nil {
		fail(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/users/42":
		io.WriteString(w, `{"id":"42","name":"Ada Lovelace"}`)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/users":
		var nu usersapi.NewUser
		if err := json.Unmarshal(body, &nu); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(usersapi.User{Id: "43", Name: nu.Name, Email: nu.Email})
	default:
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"message":"no such user"}`)
	}
}

func (u *upstream) requests() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.reqs...)
}

func status(code int, header ...string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
		io.WriteString(w, `{"message":"try again"}`)
	}
}

func start(t *testing.T, failures ...func(http.ResponseWriter)) (*upstream, *httptest.Server) {
	t.Helper()
	u := &upstream{failures: failures}
	srv := httptest.NewServer(u)
	t.Cleanup(srv.Close)
	return u, srv
}

// generated returns the generated client on the standard stack: the one line
// under test is usersapi.WithHTTPClient(hc).
func generated(t *testing.T, server string) *usersapi.ClientWithResponses {
	t.Helper()
	hc, err := outbound.NewClient(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hc.CloseIdleConnections)
	api, err := usersapi.NewClientWithResponses(server, usersapi.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// oneRequestID fails unless every request carried the same, non-empty ID.
func oneRequestID(t *testing.T, reqs []seen) {
	t.Helper()
	for i, r := range reqs {
		if r.requestID == "" {
			t.Errorf("request %d carried no X-Request-ID", i)
		} else if r.requestID != reqs[0].requestID {
			t.Errorf("request %d X-Request-ID = %q; want %q (one ID across attempts)", i, r.requestID, reqs[0].requestID)
		}
	}
}

func TestGetUserThroughTransient503s(t *testing.T) {
	u, srv := start(t, status(503), status(503))
	api := generated(t, srv.URL)

	resp, err := api.GetUserWithResponse(context.Background(), "42")
	if err != nil {
		t.Fatalf("GetUserWithResponse: %v", err)
	}
	if resp.StatusCode() != 200 || resp.JSON200 == nil || resp.JSON200.Name != "Ada Lovelace" {
		t.Fatalf("got %d %+v; want 200 with Ada Lovelace", resp.StatusCode(), resp.JSON200)
	}
	reqs := u.requests()
	if len(reqs) != 3 {
		t.Fatalf("upstream saw %d requests; want 3 (503, 503, 200)", len(reqs))
	}
	for i, r := range reqs {
		if r.method != "GET" || r.path != "/v1/users/42" {
			t.Errorf("request %d = %s %s; want GET /v1/users/42", i, r.method, r.path)
		}
	}
	oneRequestID(t, reqs)
}

func TestGetUserHonoursRetryAfter(t *testing.T) {
	u, srv := start(t, status(429, "Retry-After", "1"))
	api := generated(t, srv.URL)

	resp, err := api.GetUserWithResponse(context.Background(), "42")
	if err != nil {
		t.Fatalf("GetUserWithResponse: %v", err)
	}
	if resp.StatusCode() != 200 || resp.JSON200 == nil {
		t.Fatalf("got %d; want 200", resp.StatusCode())
	}
	reqs := u.requests()
	if len(reqs) != 2 {
		t.Fatalf("upstream saw %d requests; want 2 (429, 200)", len(reqs))
	}
	oneRequestID(t, reqs)
	// The backoff alone is at most 20 ms; the wait must be the server's
	// second (RFC 9110 §10.2.3), with generous slack for a loaded machine.
	if gap := reqs[1].at.Sub(reqs[0].at); gap < 900*time.Millisecond || gap > 5*time.Second {
		t.Errorf("retry came %v after the 429; want about 1s (Retry-After: 1)", gap)
	}
}

func TestCreateUserRetriedOnlyWithIdempotencyKey(t *testing.T) {
	name := "Grace Hopper"
	email := "grace@example.com"
	body := usersapi.NewUser{Name: name, Email: &email}

	t.Run("without key", func(t *testing.T) {
		u, srv := start(t, status(503))
		api := generated(t, srv.URL)
		resp, err := api.CreateUserWithResponse(context.Background(), &usersapi.CreateUserParams{}, body)
		if err != nil {
			t.Fatalf("CreateUserWithResponse: %v", err)
		}
		if resp.StatusCode() != 503 {
			t.Errorf("status = %d; want the upstream's 503, not retried", resp.StatusCode())
		}
		if reqs := u.requests(); len(reqs) != 1 {
			t.Errorf("upstream saw %d POSTs; want exactly 1 (POST is not idempotent)", len(reqs))
		}
	})

	t.Run("with key", func(t *testing.T) {
		u, srv := start(t, status(503))
		api := generated(t, srv.URL)
		key := "create-grace-1"
		resp, err := api.CreateUserWithResponse(context.Background(), &usersapi.CreateUserParams{IdempotencyKey: &key}, body)
		if err != nil {
			t.Fatalf("CreateUserWithResponse: %v", err)
		}
		if resp.StatusCode() != 201 || resp.JSON201 == nil || resp.JSON201.Name != name {
			t.Fatalf("got %d %+v; want 201 with %s", resp.StatusCode(), resp.JSON201, name)
		}
		reqs := u.requests()
		if len(reqs) != 2 {
			t.Fatalf("upstream saw %d POSTs; want 2 (503, 201)", len(reqs))
		}
		oneRequestID(t, reqs)
		for i, r := range reqs {
			if r.key != key {
				t.Errorf("POST %d Idempotency-Key = %q; want %q", i, r.key, key)
			}
			if r.body != reqs[0].body || r.body == "" {
				t.Errorf("POST %d body = %q; want the first attempt's %q", i, r.body, reqs[0].body)
			}
		}
	})
}

func TestClientMapsFailures(t *testing.T) {
	tests := []struct {
		name     string
		failures []func(http.ResponseWriter)
		id       string
		want     int // StatusFor
		requests int
	}{
		{"upstream keeps failing", repeat(status(503), 10), "42", http.StatusBadGateway, 4},
		{"not found is not retried", nil, "7", http.StatusBadGateway, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, srv := start(t, tt.failures...)
			c, err := sdk.New(srv.URL, testConfig())
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseIdleConnections()

			user, err := c.GetUser(context.Background(), tt.id)
			if err == nil {
				t.Fatalf("GetUser = %+v; want an error", user)
			}
			var se *outbound.StatusError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v; want a *outbound.StatusError", err)
			}
			if got := outbound.StatusFor(err); got != tt.want {
				t.Errorf("StatusFor(%v) = %d; want %d", err, got, tt.want)
			}
			if n := len(u.requests()); n != tt.requests {
				t.Errorf("upstream saw %d requests; want %d", n, tt.requests)
			}
		})
	}
}

func TestClientCreateUser(t *testing.T) {
	u, srv := start(t, status(502))
	c, err := sdk.New(srv.URL, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()

	user, err := c.CreateUser(context.Background(), "create-ada-1", usersapi.NewUser{Name: "Ada"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if user.Id != "43" || user.Name != "Ada" {
		t.Errorf("user = %+v; want id 43, name Ada", user)
	}
	if n := len(u.requests()); n != 2 {
		t.Errorf("upstream saw %d POSTs; want 2 (502, 201)", n)
	}

	u2, srv2 := start(t, status(502))
	c2, err := sdk.New(srv2.URL, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.CloseIdleConnections()
	if _, err := c2.CreateUser(context.Background(), "", usersapi.NewUser{Name: "Ada"}); outbound.StatusFor(err) != http.StatusBadGateway {
		t.Errorf("CreateUser without key: err %v (StatusFor %d); want the upstream's 502 as a StatusError", err, outbound.StatusFor(err))
	}
	if n := len(u2.requests()); n != 1 {
		t.Errorf("upstream saw %d POSTs without a key; want 1", n)
	}
}

func TestNewInvalidConfig(t *testing.T) {
	cfg := testConfig()
	cfg.MaxAttempts = 0
	cfg.TotalBudget = -time.Second
	_, err := sdk.New("http://127.0.0.1:1", cfg)
	var ce *outbound.ConfigError
	if !errors.As(err, &ce) || len(ce.Problems) < 2 {
		t.Errorf("err = %v; want a *outbound.ConfigError listing both problems", err)
	}
}

func repeat(f func(http.ResponseWriter), n int) []func(http.ResponseWriter) {
	out := make([]func(http.ResponseWriter), n)
	for i := range out {
		out[i] = f
	}
	return out
}
