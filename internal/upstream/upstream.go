// Package upstream names the upstream a request goes to, the default key of
// every keyed layer (rate limits, breakers, retry budgets).
package upstream

import (
	"net/http"
	"strings"
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
