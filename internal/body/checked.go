package body

import (
	"errors"
	"net/http"
)

// ErrNilResponse is matched (errors.Is) by the error Checked returns for a
// next RoundTripper that returned neither a response nor an error.
var ErrNilResponse = errors.New("next RoundTripper returned a nil response and a nil error")

// Checked enforces the RoundTripper contract on what next returned, as
// net/http's Client.send does, so a layer never passes on a broken outcome:
//
//   - a response that came with an error is closed and dropped: the error is
//     returned alone (net/http's client ignores such a response, whose body
//     would otherwise leak);
//   - (nil, nil) becomes an error "<layer>: next RoundTripper returned a nil
//     response and a nil error" matching ErrNilResponse;
//   - a nil resp.Body becomes http.NoBody.
//
// Every layer calls it right after its next RoundTripper returns, with its
// package name as layer:
//
//	resp, err := t.next.RoundTrip(req)
//	resp, err = body.Checked(resp, err, "retry")
func Checked(resp *http.Response, err error, layer string) (*http.Response, error) {
	if err != nil {
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		return nil, err
	}
	if resp == nil {
		return nil, &nilResponseError{layer}
	}
	if resp.Body == nil {
		resp.Body = http.NoBody
	}
	return resp, nil
}

// nilResponseError is built only on the broken path, so Checked costs no
// allocation when next keeps the contract.
type nilResponseError struct{ layer string }

func (e *nilResponseError) Error() string { return e.layer + ": " + ErrNilResponse.Error() }

func (e *nilResponseError) Unwrap() error { return ErrNilResponse }
