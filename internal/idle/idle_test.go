package idle

import (
	"net/http"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type closer struct{ n int }

func (c *closer) RoundTrip(*http.Request) (*http.Response, error) { return nil, nil }
func (c *closer) CloseIdleConnections()                           { c.n++ }

type plain struct{}

func (plain) RoundTrip(*http.Request) (*http.Response, error) { return nil, nil }

func TestClose(t *testing.T) {
	c := &closer{}
	Close(c)
	if c.n != 1 {
		t.Fatalf("CloseIdleConnections called %d times; want 1", c.n)
	}
	Close(plain{}) // no method: nothing to do, no panic
	Close(nil)
}
