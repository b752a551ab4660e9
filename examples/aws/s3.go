// Package aws shows aws-sdk-go-v2 (here the S3 client) using outbound's
// standard stack as its HTTP client, through config.WithHTTPClient, and how
// to avoid the double-retry trap: the SDK's retryer sits above the
// *http.Client it is given, so with both retry layers on, every SDK attempt
// is up to MaxAttempts wire attempts, and an outage costs the product of the
// two (3 × 4 = 12 requests per call with both defaults).
//
// Recommended: [SDKRetries], the SDK's standard retryer with outbound's retry
// and hedge layers dropped (outbound.WithoutLayer); the budget, breaker,
// limits and telemetry stay. The SDK signs every attempt afresh
// (SigV4 signs before our layers), keeps its amz-sdk-request attempt header
// true, knows S3's error codes (SlowDown, RequestTimeout, 200 with an error
// body), retries the POST operations AWS designs to be retried, and has its
// own retry quota. docs/aws.md has the measured attempts per call of every
// setting and what our headers do to signing.
package aws

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/outboundhttp/outbound"
)

// Setting is one way of combining the SDK's retries with outbound's.
type Setting int

const (
	// SDKRetries keeps the SDK's standard retryer and drops outbound's retry
	// and hedge layers (DefaultConfig hedges idempotent requests; dropping
	// the layer keeps hedging off whatever HEDGE_DELAY says). Recommended. A hedge is an extra
	// request the SDK's
	// retry quota and attempt header know nothing of, spending a budget of
	// its own (up to 20 % more requests, each one billed); put LayerHedge
	// back with outbound.WithLayer to hedge GETs for their tail latency.
	SDKRetries Setting = iota
	// OutboundRetries turns the SDK's retries off (aws.NopRetryer) and keeps
	// outbound's retry layer: one policy, outbound's retry budget and
	// hedges, but no request with a body is retried (smithy-go sets no
	// GetBody, and outbound never buffers a body it cannot rewind: a
	// PutObject after a 503 fails), nor a POST (DeleteObjects,
	// CompleteMultipartUpload), S3 error codes in the body are not seen, and
	// resends carry the first attempt's signature and amz-sdk-request header.
	OutboundRetries
	// Naive keeps both retry layers: attempts multiply. Do not use.
	Naive
)

// String names the setting as docs/aws.md does.
func (s Setting) String() string {
	switch s {
	case SDKRetries:
		return "SDK retryer, outbound without retry"
	case OutboundRetries:
		return "aws.NopRetryer, outbound retry"
	case Naive:
		return "SDK retryer + outbound retry (naive)"
	}
	return fmt.Sprintf("Setting(%d)", int(s))
}

// Options are what NewS3 needs besides the Setting.
type Options struct {
	// Endpoint is the S3 endpoint (a path-style endpoint for S3-compatible
	// servers); "" uses AWS's.
	Endpoint string
	// Region defaults to us-east-1.
	Region string
	// Credentials; nil uses the SDK's default chain.
	Credentials aws.CredentialsProvider
	// Retryer, when not nil, builds the SDK's retryer for the settings that
	// keep it (SDKRetries, Naive) instead of retry.NewStandard().
	Retryer func() aws.Retryer
	// ClientOptions are passed to outbound.NewClient after the setting's own.
	ClientOptions []outbound.ClientOption
}

// HTTPClient builds outbound's client for s from cfg: the standard stack,
// without its retry and hedge layers for SDKRetries.
func HTTPClient(cfg outbound.Config, s Setting, opts ...outbound.ClientOption) (*http.Client, error) {
	var all []outbound.ClientOption
	if s == SDKRetries {
		all = append(all, outbound.WithoutLayer(outbound.LayerRetry), outbound.WithoutLayer(outbound.LayerHedge))
	}
	return outbound.NewClient(cfg, append(all, opts...)...)
}

// NewS3 returns an S3 client whose HTTP client is outbound's (cfg), with the
// retries arranged as s says. Close the returned *http.Client's idle
// connections when done.
func NewS3(ctx context.Context, cfg outbound.Config, s Setting, o Options) (*s3.Client, *http.Client, error) {
	hc, err := HTTPClient(cfg, s, o.ClientOptions...)
	if err != nil {
		return nil, nil, err
	}
	region := o.Region
	if region == "" {
		region = "us-east-1"
	}
	loadOpts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(hc),
		config.WithRegion(region),
	}
	if o.Credentials != nil {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(o.Credentials))
	}
	switch {
	case s == OutboundRetries:
		loadOpts = append(loadOpts, config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }))
	case o.Retryer != nil:
		loadOpts = append(loadOpts, config.WithRetryer(o.Retryer))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		hc.CloseIdleConnections()
		if os.Getenv("AWS_CA_BUNDLE") != "" {
			// The SDK adds a CA bundle to the transport of a client it
			// built itself, never to a given *http.Client.
			return nil, nil, fmt.Errorf("aws: loading the SDK config: %w (AWS_CA_BUNDLE is set: give the bundle to outbound's base transport, "+
				"outbound.WithBase(base.New(base.WithTLSConfig(...))), and unset the variable)", err)
		}
		return nil, nil, fmt.Errorf("aws: loading the SDK config: %w", err)
	}
	client := s3.NewFromConfig(awsCfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
			so.UsePathStyle = true
		}
	})
	return client, hc, nil
}

// StaticCredentials returns fixed credentials, for S3-compatible servers
// and tests.
func StaticCredentials(id, secret string) aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(id, secret, "")
}
