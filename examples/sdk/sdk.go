// Package sdk shows that a client generated from an OpenAPI spec gets the
// whole outbound stack — request IDs, a total budget, jittered retries that
// honour Retry-After and Idempotency-Key, limits, a breaker and tracing —
// with one line: the generated WithHTTPClient option, given the *http.Client
// that outbound.NewClient builds.
//
//	hc, err := outbound.NewClient(outbound.DefaultConfig())
//	...
//	api, err := usersapi.NewClientWithResponses(server, usersapi.WithHTTPClient(hc))
//
// The generated code needs no change: it calls Do on the client it was given,
// and every layer works per call below that. Client adds the one thing a
// generated client lacks, failure statuses as *outbound.StatusError, so a
// service can answer its own caller with outbound.StatusFor.
package sdk

import (
	"context"
	"fmt"
	"net/http"

	"github.com/outboundhttp/outbound"
	"github.com/outboundhttp/outbound/examples/sdk/usersapi"
)

// Client calls the Users API through the standard outbound stack. It is safe
// for concurrent use. Its zero value is not usable; create it with New, and
// call CloseIdleConnections when done with it.
type Client struct {
	api *usersapi.Client
	hc  *http.Client
}

// New returns a Client for the Users API at server (for example
// "https://users.example.com"), whose every call goes through the stack that
// outbound.NewClient builds from cfg and opts. It returns cfg's validation
// errors (every problem at once) as outbound.NewClient does.
func New(server string, cfg outbound.Config, opts ...outbound.ClientOption) (*Client, error) {
	hc, err := outbound.NewClient(cfg, opts...)
	if err != nil {
		return nil, err
	}
	api, err := usersapi.NewClient(server, usersapi.WithHTTPClient(hc)) // the one line
	if err != nil {
		hc.CloseIdleConnections()
		return nil, fmt.Errorf("sdk: %w", err)
	}
	return &Client{api: api, hc: hc}, nil
}

// GetUser returns the user with the given id. Transient failures (408, 429,
// 5xx gateways, resets) are retried by the stack within the budget; a failure
// status that remains is returned as a *outbound.StatusError, so
// outbound.StatusFor maps every error of GetUser.
func (c *Client) GetUser(ctx context.Context, id string) (*usersapi.User, error) {
	resp, err := c.api.GetUser(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("sdk: GetUser: %w", err)
	}
	if err := outbound.CheckResponse(resp); err != nil {
		return nil, fmt.Errorf("sdk: GetUser: %w", err)
	}
	r, err := usersapi.ParseGetUserResponse(resp) // reads and closes the body
	if err != nil {
		return nil, fmt.Errorf("sdk: GetUser: %w", err)
	}
	if r.JSON200 == nil {
		return nil, fmt.Errorf("sdk: GetUser: unexpected %s response (Content-Type %q)",
			resp.Status, resp.Header.Get("Content-Type"))
	}
	return r.JSON200, nil
}

// CreateUser creates a user. With a non-empty idempotencyKey the request
// carries an Idempotency-Key header and the stack may repeat it after a
// transient failure, the server being the one to deduplicate; with an empty
// key the POST is sent once (RFC 9110 §9.2.2: POST is not idempotent), and a
// failure is returned as is. Errors are as for GetUser.
func (c *Client) CreateUser(ctx context.Context, idempotencyKey string, u usersapi.NewUser) (*usersapi.User, error) {
	var params usersapi.CreateUserParams
	if idempotencyKey != "" {
		params.IdempotencyKey = &idempotencyKey
	}
	resp, err := c.api.CreateUser(ctx, &params, u)
	if err != nil {
		return nil, fmt.Errorf("sdk: CreateUser: %w", err)
	}
	if err := outbound.CheckResponse(resp); err != nil {
		return nil, fmt.Errorf("sdk: CreateUser: %w", err)
	}
	r, err := usersapi.ParseCreateUserResponse(resp) // reads and closes the body
	if err != nil {
		return nil, fmt.Errorf("sdk: CreateUser: %w", err)
	}
	if r.JSON201 == nil {
		return nil, fmt.Errorf("sdk: CreateUser: unexpected %s response (Content-Type %q)",
			resp.Status, resp.Header.Get("Content-Type"))
	}
	return r.JSON201, nil
}

// CloseIdleConnections closes the idle connections of the underlying
// *http.Client; call it when done with c.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }
