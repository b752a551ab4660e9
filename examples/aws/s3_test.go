package aws_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.uber.org/goleak"

	"github.com/outboundhttp/outbound"
	awsexample "github.com/outboundhttp/outbound/examples/aws"
	"github.com/outboundhttp/outbound/transport/base"
	"github.com/outboundhttp/outbound/transport/chaos"
	"github.com/outboundhttp/outbound/transport/tracing"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// http.Server's keep-alive connections of the loopback S3 server
		// may outlive a test by a moment after Close.
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

var testCreds = aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", Source: "test"}

const bucket = "outbound-example"

// s3Server is gofakes3 on a loopback socket behind a SigV4 verifier, with a
// record of the headers of every request that reached it.
type s3Server struct {
	*httptest.Server
	mu      sync.Mutex
	headers []http.Header
}

func newS3Server(t *testing.T) *s3Server {
	t.Helper()
	// The SDK must read neither the machine's AWS config nor its metadata
	// service.
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", dir+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/credentials")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_PROFILE", "")
	// With AWS_CA_BUNDLE set the SDK refuses an *http.Client it cannot add
	// root CAs to (docs/aws.md); loopback HTTP needs none.
	t.Setenv("AWS_CA_BUNDLE", "")

	backend := s3mem.New()
	faker := gofakes3.New(backend)
	s := &s3Server{}
	verified := sigV4Verifier{creds: testCreds, next: faker.Server()}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.headers = append(s.headers, r.Header.Clone())
		s.mu.Unlock()
		verified.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *s3Server) seen() []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]http.Header(nil), s.headers...)
}

func newS3(t *testing.T, srv *s3Server, cfg outbound.Config, set awsexample.Setting, o awsexample.Options) *s3.Client {
	t.Helper()
	o.Endpoint = srv.URL
	o.Credentials = aws.NewCredentialsCache(awsexample.StaticCredentials(testCreds.AccessKeyID, testCreds.SecretAccessKey))
	client, hc, err := awsexample.NewS3(context.Background(), cfg, set, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hc.CloseIdleConnections)
	return client
}

func put(ctx context.Context, c *s3.Client, key, body string) error {
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)})
	return err
}

func get(ctx context.Context, c *s3.Client, key string) (string, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return "", err
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	return string(b), err
}

// TestSignatureSurvivesTheStack: every header outbound adds (request ID,
// traceparent, the remaining budget, the attempt number, Idempotency-Key) is
// added after the SDK signed the request, so it is not in SignedHeaders and
// the signature still verifies; the server sees them all. Checked for every
// setting, through PUT, GET, a POST (DeleteObjects) and a DELETE.
func TestSignatureSurvivesTheStack(t *testing.T) {
	for _, set := range []awsexample.Setting{awsexample.SDKRetries, awsexample.OutboundRetries, awsexample.Naive} {
		t.Run(set.String(), func(t *testing.T) {
			srv := newS3Server(t)
			cfg := outbound.DefaultConfig()
			cfg.DeadlineHeader = "Request-Timeout-Ms"
			cfg.AttemptHeader = "X-Attempt"
			cfg.IdempotencyKeys = true
			tp := sdktrace.NewTracerProvider()
			defer tp.Shutdown(context.Background())
			c := newS3(t, srv, cfg, set, awsexample.Options{ClientOptions: []outbound.ClientOption{
				outbound.WithTracingOptions(tracing.WithTracerProvider(tp), tracing.WithPropagators(propagation.TraceContext{})),
			}})
			ctx, cancel := ctxFor(10 * time.Second)
			defer cancel()

			if err := put(ctx, c, "a.txt", "hello"); err != nil {
				t.Fatalf("PutObject: %v", err)
			}
			if got, err := get(ctx, c, "a.txt"); err != nil || got != "hello" {
				t.Fatalf("GetObject = %q, %v; want hello", got, err)
			}
			if _, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(bucket),
				Delete: &s3types.Delete{Objects: []s3types.ObjectIdentifier{{Key: aws.String("a.txt")}}}}); err != nil {
				t.Fatalf("DeleteObjects: %v", err)
			}
			if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("a.txt")}); err != nil {
				t.Fatalf("DeleteObject: %v", err)
			}

			added := map[string]bool{"X-Request-Id": false, "Traceparent": false, "Request-Timeout-Ms": false}
			if set != awsexample.SDKRetries { // the retry layer sends these
				added["X-Attempt"], added["Idempotency-Key"] = false, false
			}
			for _, h := range srv.seen() {
				p, err := parseAuth(h.Get("Authorization"))
				if err != nil {
					t.Fatalf("request without SigV4: %v", err)
				}
				signed := map[string]bool{}
				for _, k := range p.signedHeaders {
					signed[http.CanonicalHeaderKey(k)] = true
				}
				for k := range added {
					if h.Get(k) != "" {
						added[k] = true
						if signed[k] {
							t.Errorf("%s is in SignedHeaders %v; our layers add it after signing", k, p.signedHeaders)
						}
					}
				}
			}
			for k, ok := range added {
				if !ok {
					t.Errorf("the server never saw %s", k)
				}
			}
		})
	}
}

// TestChangingASignedHeaderBreaksTheSignature is the verifier's control: a
// layer below the SDK that rewrites a header the SDK signed (here
// amz-sdk-request, as a naive attempt counter would) gets 403
// SignatureDoesNotMatch for every call.
func TestChangingASignedHeaderBreaksTheSignature(t *testing.T) {
	srv := newS3Server(t)
	rewrite := func(next http.RoundTripper) http.RoundTripper {
		return outbound.RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
			r = r.Clone(r.Context())
			r.Header.Set("Amz-Sdk-Request", "attempt=2; max=3")
			return next.RoundTrip(r)
		})
	}
	c := newS3(t, srv, outbound.DefaultConfig(), awsexample.SDKRetries, awsexample.Options{
		ClientOptions: []outbound.ClientOption{outbound.WithMiddlewareAfter(outbound.LayerHeader, rewrite)},
	})
	ctx, cancel := ctxFor(10 * time.Second)
	defer cancel()
	err := put(ctx, c, "b.txt", "x")
	if err == nil || !strings.Contains(err.Error(), "SignatureDoesNotMatch") {
		t.Fatalf("PutObject with a rewritten signed header: %v; want SignatureDoesNotMatch", err)
	}
}

// attempts runs calls GETs (workers at a time) through a client built for
// set over faults injected below the whole stack, and returns the wire
// attempts per call and the calls that failed.
func attempts(t *testing.T, set awsexample.Setting, cfg outbound.Config, o awsexample.Options, faults []chaos.Fault, calls, workers int) (perCall float64, failed int) {
	t.Helper()
	srv := newS3Server(t)
	setup := newS3(t, srv, outbound.DefaultConfig(), awsexample.SDKRetries, awsexample.Options{})
	ctx, cancel := ctxFor(10 * time.Second)
	defer cancel()
	if err := put(ctx, setup, "k", "value"); err != nil {
		t.Fatalf("PutObject: %v", err)
	}

	faulty := chaos.NewTransport(base.New(), chaos.WithFaults(faults...), chaos.WithSeed(1))
	o.ClientOptions = append(o.ClientOptions, outbound.WithBase(faulty))
	c := newS3(t, srv, cfg, set, o)
	var next, nfailed atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(calls) {
				ctx, cancel := ctxFor(60 * time.Second)
				v, err := get(ctx, c, "k")
				cancel()
				if err != nil || v != "value" {
					if nfailed.Add(1) <= 3 && len(faults) > 0 && faults[0].Probability > 0 {
						t.Logf("%s: GetObject = %q, %v", set, v, err)
					}
				}
			}
		})
	}
	wg.Wait()
	return float64(faulty.Stats().Requests) / float64(calls), int(nfailed.Load())
}

// TestAttemptsPerCall measures the double-retry trap. Under 10 % transient
// 503s every setting makes about 1/(1-0.1) ≈ 1.11 attempts per call for its
// retries (the inner layer's first retry almost always succeeds), plus, where
// the hedge layer stays and hedging is turned on, the hedges it sends when an
// attempt is slower than usual; the recommended setting must stay at or below
// 1.15. In an outage the naive setting multiplies the two
// retry layers' attempts.
func TestAttemptsPerCall(t *testing.T) {
	settings := []awsexample.Setting{awsexample.SDKRetries, awsexample.OutboundRetries, awsexample.Naive}
	transient := []chaos.Fault{chaos.Status(http.StatusServiceUnavailable).WithProbability(0.1)}
	outage := []chaos.Fault{chaos.Status(http.StatusServiceUnavailable)}
	// The SDK's standard retryer waits up to 2 s before its first retry;
	// the outage runs use short waits on both sides and no breaker, so they
	// show the multiplication itself in little time.
	fastSDK := func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxBackoff = 10 * time.Millisecond })
	}
	fastCfg := outbound.DefaultConfig()
	fastCfg.BackoffInitial, fastCfg.BackoffMax = time.Millisecond, 10*time.Millisecond
	fastCfg.CircuitEnabled = false
	fastCfg.RetryBudgetRatio = 0 // the budget would hide the product after a few calls

	const calls = 300
	rows := make([]string, 0, len(settings))
	transientPer := map[awsexample.Setting]float64{}
	outagePer := map[awsexample.Setting]float64{}
	for _, set := range settings {
		per, failed := attempts(t, set, outbound.DefaultConfig(), awsexample.Options{}, transient, calls, 16)
		// A call fails when all of its attempts do: 0.1³ for the SDK's 3,
		// so 0.3 of 300 calls on average.
		if failed > calls/100 {
			t.Errorf("%s: %d of %d calls failed under 10 %% transient 503s; want at most %d", set, failed, calls, calls/100)
		}
		oPer, _ := attempts(t, set, fastCfg, awsexample.Options{Retryer: fastSDK}, outage, 5, 1)
		transientPer[set], outagePer[set] = per, oPer
		rows = append(rows, fmt.Sprintf("| %-38s | %5.3f | %5.1f |", set, per, oPer))
	}
	t.Logf("attempts per call (%d GetObject calls, 10 %% transient 503s; 5 calls in an outage):\n"+
		"| setting                                | 10 %% 503 | outage |\n%s", calls, strings.Join(rows, "\n"))

	if got := transientPer[awsexample.SDKRetries]; got > 1.15 {
		t.Errorf("recommended setting: %.3f attempts per call under 10 %% transient 503s; want <= 1.15", got)
	}
	// 3 SDK attempts × 4 outbound attempts against 3 or 4.
	if n, s := outagePer[awsexample.Naive], outagePer[awsexample.SDKRetries]; n < 2*s || s > 3 {
		t.Errorf("outage: naive %.1f, recommended %.1f attempts per call; want naive >= 2x recommended, recommended <= 3", n, s)
	}
}

// TestOnlyTheSDKRetriesUploads: smithy-go builds requests without GetBody,
// so outbound's retry layer, which never buffers a body it cannot rewind,
// does not resend a PutObject after a 503; the SDK's retryer, which rewinds
// its own body and signs again, does. One reason SDKRetries is the
// recommended setting.
func TestOnlyTheSDKRetriesUploads(t *testing.T) {
	for _, tt := range []struct {
		set     awsexample.Setting
		wantErr bool
	}{
		{awsexample.SDKRetries, false},
		{awsexample.OutboundRetries, true},
	} {
		t.Run(tt.set.String(), func(t *testing.T) {
			srv := newS3Server(t)
			faulty := chaos.NewTransport(base.New(), chaos.WithFaults(chaos.Status(http.StatusServiceUnavailable).Times(1)))
			c := newS3(t, srv, outbound.DefaultConfig(), tt.set, awsexample.Options{ClientOptions: []outbound.ClientOption{outbound.WithBase(faulty)}})
			ctx, cancel := ctxFor(10 * time.Second)
			defer cancel()
			err := put(ctx, c, "upload", "body")
			if (err != nil) != tt.wantErr {
				t.Errorf("PutObject after one 503: %v; want error %v", err, tt.wantErr)
			}
			if n := faulty.Stats().Requests; n != map[bool]int{false: 2, true: 1}[tt.wantErr] {
				t.Errorf("%d requests sent", n)
			}
		})
	}
}
