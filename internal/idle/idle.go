// Package idle forwards CloseIdleConnections down a stack of RoundTrippers,
// so that http.Client.CloseIdleConnections reaches the base transport through
// every layer, as net/http expects of a wrapping RoundTripper.
package idle

import "net/http"

// Close calls rt.CloseIdleConnections when rt has that method, and does
// nothing otherwise.
func Close(rt http.RoundTripper) {
	if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
