package aws_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/outboundhttp/outbound"
	awsexample "github.com/outboundhttp/outbound/examples/aws"
)

// An S3 client on outbound's standard stack, with the SDK doing the retries
// (the recommended setting), against an S3-compatible server on loopback.
func ExampleNewS3() {
	backend := s3mem.New()
	if err := backend.CreateBucket("photos"); err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	defer srv.Close()

	// With AWS_CA_BUNDLE set, config.LoadDefaultConfig refuses any
	// *http.Client it cannot add root CAs to; a bundle goes into the base
	// transport instead (docs/aws.md). Plain HTTP on loopback needs none.
	os.Unsetenv("AWS_CA_BUNDLE")

	ctx := context.Background()
	client, hc, err := awsexample.NewS3(ctx, outbound.DefaultConfig(), awsexample.SDKRetries, awsexample.Options{
		Endpoint:    srv.URL,
		Credentials: awsexample.StaticCredentials("AKIDEXAMPLE", "secret"),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer hc.CloseIdleConnections()

	if _, err := client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("photos"), Key: aws.String("cat.txt"), Body: strings.NewReader("meow"),
	}); err != nil {
		log.Fatal(err)
	}
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("photos"), Key: aws.String("cat.txt")})
	if err != nil {
		log.Fatal(err)
	}
	defer out.Body.Close()
	b, _ := io.ReadAll(out.Body)
	fmt.Println(string(b))
	// Output: meow
}
