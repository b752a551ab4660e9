package header_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/outboundhttp/outbound/internal/contracttest"
	"github.com/outboundhttp/outbound/transport/header"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func echoHeaders() (contracttest.RoundTripFunc, *http.Header) {
	var seen http.Header
	return func(r *http.Request) (*http.Response, error) {
		seen = r.Header.Clone()
		return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r, Header: http.Header{}}, nil
	}, &seen
}

type trackBody struct {
	io.Reader
	closed atomic.Bool
}

func (b *trackBody) Close() error { b.closed.Store(true); return nil }

func TestStaticHeadersAndTokenNeverOverwrite(t *testing.T) {
	base, seen := echoHeaders()
	rt := header.NewTransport(base, header.WithHeader("user-agent", "svc/1"), header.WithBearerToken("tok-1"))

	req := httptest.NewRequest("GET", "http://api.test/", nil)
	if _, err := rt.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	if got := seen.Get("User-Agent"); got != "svc/1" {
		t.Errorf("User-Agent = %q; want svc/1", got)
	}
	if got := seen.Get("Authorization"); got != "Bearer tok-1" {
		t.Errorf("Authorization = %q; want Bearer tok-1", got)
	}
	if len(req.Header) != 0 {
		t.Errorf("caller's request was modified: %v", req.Header)
	}

	req = httptest.NewRequest("GET", "http://api.test/", nil)
	req.Header.Set("User-Agent", "caller/9")
	req.Header.Set("Authorization", "Basic abc")
	if _, err := rt.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	if seen.Get("User-Agent") != "caller/9" || seen.Get("Authorization") != "Basic abc" {
		t.Errorf("caller's headers overwritten: %v", *seen)
	}
}

// Adding the headers costs one small copy of the request per attempt (the
// request and its header map): the static values and an unchanged token's
// Authorization value are built once, not per request.
func TestCopyPerAttemptOnly(t *testing.T) {
	resp := &http.Response{StatusCode: 200, Body: http.NoBody, Header: http.Header{}}
	base := contracttest.RoundTripFunc(func(*http.Request) (*http.Response, error) { return resp, nil })
	rt := header.NewTransport(base, header.WithHeader("User-Agent", "svc/1"), header.WithBearerToken("tok-1"))
	req := httptest.NewRequest("GET", "http://api.test/", nil)
	req.Header.Set("Accept", "application/json")
	if n := testing.AllocsPerRun(100, func() { rt.RoundTrip(req) }); n > 3 {
		t.Errorf("RoundTrip allocates %v times; want at most 3 (the request copy and its header map)", n)
	}
}

func TestTokenSourceCalledPerAttempt(t *testing.T) {
	base, seen := echoHeaders()
	var n atomic.Int32
	rt := header.NewTransport(base, header.WithTokenSource(func(context.Context) (string, error) {
		return fmt.Sprintf("tok-%d", n.Add(1)), nil
	}))
	for i := 1; i <= 2; i++ {
		if _, err := rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil)); err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("Bearer tok-%d", i); seen.Get("Authorization") != want {
			t.Errorf("attempt %d: Authorization = %q; want %q", i, seen.Get("Authorization"), want)
		}
	}
}

func TestTokenErrorClosesBodyAndHidesToken(t *testing.T) {
	called := false
	base := contracttest.RoundTripFunc(func(r *http.Request) (*http.Response, error) { called = true; return nil, errors.New("unreachable") })
	cause := errors.New("refresh failed")
	rt := header.NewTransport(base, header.WithTokenSource(func(context.Context) (string, error) { return "", cause }))
	body := &trackBody{Reader: strings.NewReader("payload")}
	req := httptest.NewRequest("POST", "http://api.test/", body)
	resp, err := rt.RoundTrip(req)
	if resp != nil || !errors.Is(err, header.ErrToken) || !errors.Is(err, cause) {
		t.Fatalf("RoundTrip = %v, %v; want nil and an error matching ErrToken and the cause", resp, err)
	}
	if called || !body.closed.Load() {
		t.Fatalf("next called %v, body closed %v; want false, true", called, body.closed.Load())
	}

	rt = header.NewTransport(base, header.WithTokenSource(func(context.Context) (string, error) { return "bad\r\ntoken", nil }))
	_, err = rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil))
	if !errors.Is(err, header.ErrToken) || strings.Contains(err.Error(), "bad") {
		t.Fatalf("err = %v; want ErrToken without the token", err)
	}
}

func TestInvalidOptionsPanic(t *testing.T) {
	for name, f := range map[string]func(){
		"bad name":   func() { header.WithHeader("bad name", "v") },
		"bad value":  func() { header.WithHeader("X-A", "a\nb") },
		"empty tok":  func() { header.WithBearerToken("") },
		"crlf token": func() { header.WithBearerToken("secret\r\nX: y") },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil {
					t.Fatal("no panic")
				}
				if strings.Contains(fmt.Sprint(r), "secret") {
					t.Fatalf("panic message leaks the token: %v", r)
				}
			}()
			f()
		})
	}
}

// The token is sent to the original host and not to another host a redirect
// leads to, while Go's redirect rules stay in force.
func TestTokenNotSentAcrossHostsOnRedirect(t *testing.T) {
	var otherAuth atomic.Value
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherAuth.Store(r.Header.Get("Authorization"))
	}))
	defer other.Close()
	var sameAuth atomic.Value
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, other.URL+"/landed", http.StatusFound)
		case "/here":
			http.Redirect(w, r, "/final", http.StatusFound)
		default:
			sameAuth.Store(r.Header.Get("Authorization"))
		}
	}))
	defer origin.Close()

	client := &http.Client{Transport: header.NewTransport(http.DefaultTransport, header.WithBearerToken("tok-secret"))}
	defer client.CloseIdleConnections()
	for _, path := range []string{"/away", "/here"} {
		resp, err := client.Get(origin.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if got, _ := otherAuth.Load().(string); got != "" {
		t.Errorf("other host received Authorization %q; want none", got)
	}
	if got, _ := sameAuth.Load().(string); got != "Bearer tok-secret" {
		t.Errorf("same-host redirect received Authorization %q; want the token", got)
	}
}

func Example() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s | %s", r.Header.Get("User-Agent"), r.Header.Get("Authorization"))
	}))
	defer upstream.Close()

	client := &http.Client{Transport: header.NewTransport(nil,
		header.WithHeader("User-Agent", "billing/1.4"),
		header.WithTokenSource(func(ctx context.Context) (string, error) { return "t0ken", nil }),
	)}
	resp, err := client.Get(upstream.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Println(string(b))
	client.CloseIdleConnections()
	// Output: billing/1.4 | Bearer t0ken
}
