// Package idempotent says which requests may be sent more than once, for the
// layers that repeat them (retry, hedge), so that both apply one rule.
package idempotent

import "net/http"

// KeyHeader marks a request as safe to repeat whatever its method
// (draft-ietf-httpapi-idempotency-key-header).
const KeyHeader = "Idempotency-Key"

// Methods returns the methods RFC 9110 §9.2.2 defines as idempotent, in a new
// slice.
func Methods() []string {
	return []string{http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace,
		http.MethodPut, http.MethodDelete}
}

// Method reports whether m is one of Methods; "" is GET, as net/http reads it.
func Method(m string) bool {
	switch m {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace,
		http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}
