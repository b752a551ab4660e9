// Package upstream names the upstream a request goes to, the default key of
// every keyed layer (rate limits, breakers, retry budgets).
package upstream

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// Key returns "scheme://host:port" for req, with the scheme and host in lower
// case and the port made explicit (80 for http, 443 for https), so that
// "https://API.example.com" and "https://api.example.com:443" share one key.
func Key(req *http.Request) string {
	u := req.URL
	if u == nil {
		return ""
	}
	scheme := strings.ToLower(u.Scheme)
	host := u.Host
	if host == "" {
		host = req.Host
	}
	host = strings.ToLower(host)
	if !hasPort(host) {
		switch scheme {
		case "https":
			host += ":443"
		case "http":
			host += ":80"
		}
	}
	return scheme + "://" + host
}

// hasPort reports whether host ends in ":port", allowing for bracketed IPv6.
func hasPort(host string) bool {
	i := strings.LastIndexByte(host, ':')
	return i >= 0 && i > strings.LastIndexByte(host, ']')
}

// hostKey is what Key depends on: the URL's scheme and host (or req.Host when
// the URL has none).
type hostKey struct{ scheme, host string }

// Cache remembers Key results so the success path of a keyed layer does not
// build the same "scheme://host:port" string for every request (two
// allocations saved per layer and request). It holds at most Max entries
// (1024 when Max < 1) and starts over when full. The zero value is ready to
// use; it is safe for concurrent use.
type Cache struct {
	Max int
	mu  sync.Mutex                         // serialises misses
	m   atomic.Pointer[map[hostKey]string] // read without a lock; replaced, never changed, on a miss
}

// Key returns Key(req), from the cache when it can. A hit takes no lock: the
// map is replaced on a miss (copy on write), which is rare, as a client talks
// to a few upstreams.
func (c *Cache) Key(req *http.Request) string {
	if req.URL == nil {
		return Key(req)
	}
	hk := hostKey{req.URL.Scheme, req.URL.Host}
	if hk.host == "" {
		hk.host = req.Host
	}
	if m := c.m.Load(); m != nil {
		if k, ok := (*m)[hk]; ok {
			return k
		}
	}
	k := Key(req)
	max := c.Max
	if max < 1 {
		max = 1024
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	// When full, start afresh rather than copy a map a flood of hosts filled.
	next := make(map[hostKey]string, 1)
	if old != nil && len(*old) < max {
		next = make(map[hostKey]string, len(*old)+1)
		for hk, k := range *old {
			next[hk] = k
		}
	}
	next[hk] = k
	c.m.Store(&next)
	return k
}
