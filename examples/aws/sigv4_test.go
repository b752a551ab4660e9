package aws_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// sigV4Verifier is the server side of SigV4 that gofakes3 leaves out (it
// reads the access key and never checks the signature): it recomputes the
// signature of each request from the headers its Authorization lists in
// SignedHeaders, with the SDK's own signer, and answers 403
// SignatureDoesNotMatch when it differs, as S3 does. Headers not listed are
// not part of the signature, which is what makes the headers our layers add
// after the SDK has signed harmless.
type sigV4Verifier struct {
	creds aws.Credentials
	next  http.Handler
}

func (v sigV4Verifier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := v.check(r); err != nil {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, "<Error><Code>SignatureDoesNotMatch</Code><Message>%s</Message></Error>", err)
		return
	}
	v.next.ServeHTTP(w, r)
}

// parsedAuth is an Authorization header of the form
// "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request,
// SignedHeaders=host;x-amz-date, Signature=hex".
type parsedAuth struct {
	region, service string
	signedHeaders   []string
}

func parseAuth(h string) (parsedAuth, error) {
	const algo = "AWS4-HMAC-SHA256 "
	if !strings.HasPrefix(h, algo) {
		return parsedAuth{}, errors.New("not AWS4-HMAC-SHA256")
	}
	var p parsedAuth
	for _, part := range strings.Split(strings.TrimPrefix(h, algo), ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			scope := strings.Split(val, "/")
			if len(scope) != 5 {
				return parsedAuth{}, fmt.Errorf("credential scope %q", val)
			}
			p.region, p.service = scope[2], scope[3]
		case "SignedHeaders":
			p.signedHeaders = strings.Split(val, ";")
		}
	}
	if p.service == "" || len(p.signedHeaders) == 0 {
		return parsedAuth{}, fmt.Errorf("incomplete Authorization %q", h)
	}
	return p, nil
}

func (v sigV4Verifier) check(r *http.Request) error {
	got := r.Header.Get("Authorization")
	p, err := parseAuth(got)
	if err != nil {
		return err
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return fmt.Errorf("X-Amz-Date: %w", err)
	}
	// The request as the client signed it: the signed headers only.
	c, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+r.Host+r.RequestURI, nil)
	if err != nil {
		return err
	}
	c.ContentLength = r.ContentLength
	for _, k := range p.signedHeaders {
		switch k {
		case "host", "content-length": // from c.Host and c.ContentLength
		default:
			vv := r.Header.Values(k)
			if len(vv) == 0 {
				return fmt.Errorf("signed header %q is missing", k)
			}
			c.Header[http.CanonicalHeaderKey(k)] = vv
		}
	}
	err = v4.NewSigner().SignHTTP(r.Context(), v.creds, c, r.Header.Get("X-Amz-Content-Sha256"), p.service, p.region, at,
		func(o *v4.SignerOptions) { o.DisableURIPathEscaping = p.service == "s3" })
	if err != nil {
		return err
	}
	if want := c.Header.Get("Authorization"); want != got {
		return fmt.Errorf("signature mismatch: sent %q, expected %q", got, want)
	}
	return nil
}

// ctxFor is a short-lived context for one call.
func ctxFor(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
