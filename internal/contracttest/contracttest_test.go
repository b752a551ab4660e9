package contracttest_test

import (
	"context"
	"net/http"
	"testing"

	"go.uber.org/goleak"

	"github.com/outboundhttp/outbound/internal/body"
	"github.com/outboundhttp/outbound/internal/contracttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// keeper is a layer that keeps the contract and holds a context per request:
// the shape every concern package follows.
type keeper struct{ next http.RoundTripper }

func (k keeper) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	resp, err := k.next.RoundTrip(req.WithContext(ctx))
	if resp, err = body.Checked(resp, err, "keeper"); err != nil {
		cancel()
		return nil, err
	}
	body.OnDone(resp, cancel)
	return resp, nil
}

func (k keeper) CloseIdleConnections() {
	if c, ok := k.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func newKeeper(next http.RoundTripper) http.RoundTripper { return keeper{next} }

func TestKeeperPasses(t *testing.T) {
	contracttest.Run(t, newKeeper,
		contracttest.NeverRefuses("keeper sends every request"),
		contracttest.NeverWaits("keeper waits for nothing"),
		contracttest.NeverDiscards("keeper hands on every response"),
	)
}
