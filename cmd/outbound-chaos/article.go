package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"
)

// The reference article's client (httpx + tenacity), transcribed:
//
//	httpx.Timeout(connect=2.0, read=8.0, write=5.0, pool=2.0)
//	httpx.Limits(max_connections=100, max_keepalive_connections=20)
//	@retry(retry=retry_if_exception(is_transient),   # 429/502/503/504, "Network error"
//	       stop=stop_after_attempt(4),
//	       wait=wait_exponential_jitter(initial=0.2, max=3))
//
// The body is read inside the retried function (resp.json()), so a read
// timeout on the body is a "Network error" and is retried too. There is no
// total budget and Retry-After is ignored.
const (
	articleAttempts       = 4
	articleInitial        = 200 * time.Millisecond
	articleMax            = 3 * time.Second
	articleJitter         = time.Second // tenacity's default jitter=1
	articleConnectTimeout = 2 * time.Second
	articleReadTimeout    = 8 * time.Second
)

// articleWait is tenacity's wait_exponential_jitter after attempt n (1 for
// the first): initial·2^(n-1) + uniform(0, jitter), capped at max. The jitter
// is ADDED to the exponential, so waits never go below the curve and clients
// that failed together still retry close together.
func articleWait(n int, u float64) time.Duration {
	w := articleInitial<<(n-1) + time.Duration(u*float64(articleJitter))
	return min(w, articleMax)
}

// articleTransient is the article's is_transient: the statuses it names, and
// every transport error (httpx.HTTPError: connect, read and pool timeouts,
// resets, protocol errors).
func articleTransient(status int, err error) bool {
	var se statusError
	if errors.As(err, &se) {
		switch se.code {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	return err != nil
}

// articleClient returns the article's policy as a caller.
func articleClient(e clientEnv) (caller, error) {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: articleConnectTimeout}).DialContext,
		ResponseHeaderTimeout: articleReadTimeout, // httpx's read timeout covers the wait for headers
		MaxConnsPerHost:       100,
		MaxIdleConnsPerHost:   20,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	hc := &http.Client{Transport: tr}
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(uint64(e.seed), 0x61727469636c65)) // "article"
	uniform := func() float64 {
		mu.Lock()
		defer mu.Unlock()
		return rng.Float64()
	}
	return caller{
		do: func(req *http.Request) (int, error) {
			ctx := req.Context()
			for n := 1; ; n++ {
				status, err := articleAttempt(hc, req)
				if err == nil || !articleTransient(status, err) || n == articleAttempts {
					return status, err
				}
				t := time.NewTimer(articleWait(n, uniform()))
				select {
				case <-ctx.Done():
					t.Stop()
					return status, fmt.Errorf("%w (after %v)", ctx.Err(), err)
				case <-t.C:
				}
			}
		},
		close: hc.CloseIdleConnections,
	}, nil
}

// articleAttempt sends one attempt and reads its body, failing it when no
// byte arrives for articleReadTimeout (httpx's read timeout is per read).
func articleAttempt(hc *http.Client, req *http.Request) (int, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	defer cancel(nil)
	r := req.Clone(ctx)
	if req.GetBody != nil {
		b, err := req.GetBody()
		if err != nil {
			return 0, err
		}
		r.Body = b
	}
	resp, err := hc.Do(r)
	if err != nil {
		return 0, err
	}
	idle := time.AfterFunc(articleReadTimeout, func() { cancel(errReadTimeout) })
	defer idle.Stop()
	_, err = io.Copy(io.Discard, readFunc(func(p []byte) (int, error) {
		n, err := resp.Body.Read(p)
		if n > 0 {
			idle.Reset(articleReadTimeout)
		}
		return n, err
	}))
	resp.Body.Close()
	if err != nil {
		if c := context.Cause(ctx); errors.Is(c, errReadTimeout) {
			err = c
		}
		return resp.StatusCode, fmt.Errorf("reading body: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, statusError{resp.StatusCode}
	}
	return resp.StatusCode, nil
}

var errReadTimeout = errors.New("read timeout")

type readFunc func([]byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }
