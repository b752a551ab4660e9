package retry

import (
	"net/http"
	"sync"

	"github.com/outboundhttp/outbound/internal/upstream"
)

// hostKey is what the default key depends on: upstream.Key(req) is a function
// of the URL's scheme and host (or req.Host when the URL has none).
type hostKey struct{ scheme, host string }

// keyCache remembers upstream.Key results so the success path does not build
// the same "scheme://host:port" string for every request. It holds at most max
// entries and starts over when full. It is safe for concurrent use.
type keyCache struct {
	max int
	mu  sync.RWMutex
	m   map[hostKey]string
}

func (c *keyCache) key(req *http.Request) string {
	if req.URL == nil {
		return upstream.Key(req)
	}
	hk := hostKey{req.URL.Scheme, req.URL.Host}
	if hk.host == "" {
		hk.host = req.Host
	}
	c.mu.RLock()
	k, ok := c.m[hk]
	c.mu.RUnlock()
	if ok {
		return k
	}
	k = upstream.Key(req)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= c.max {
		c.m = make(map[hostKey]string)
	}
	c.m[hk] = k
	c.mu.Unlock()
	return k
}
