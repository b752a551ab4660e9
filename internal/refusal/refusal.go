// Package refusal declares how a layer marks an error as a local refusal: the
// request was not sent because a layer of this process declined it (an open
// circuit, a rate or concurrency limit, server pushback being waited out, a
// spent time budget), so the upstream was not even asked.
//
// The concern packages never import each other; their error types implement
// Local, and the layers that must tell a refusal from an upstream failure
// check it with IsLocal: retry does not retry it (asking the same layer again
// only adds load where it was shed), and circuit does not count it against
// the upstream's health. An open breaker's refusal also implements Probe,
// which tells the retry layer when the breaker's next probe goes and when it
// has reported, so that a call can wait for it (retry.WithWaitForBreaker).
package refusal

import "errors"

// Local is implemented by errors that can say whether they are a local
// refusal. LocalRefusal reports true when the request was not sent.
type Local interface{ LocalRefusal() bool }

// IsLocal reports whether err, or an error it wraps, is a local refusal.
// Callers on a hot path check err != nil first: the errors.As target is
// allocated only here.
func IsLocal(err error) bool {
	if err == nil {
		return false
	}
	var l Local
	return errors.As(err, &l) && l.LocalRefusal()
}
