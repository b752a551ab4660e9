package callctx

import (
	"context"
	"time"
)

// Saturation reports whether an upstream has no room for one more request
// now: a layer that limits the requests to it (transport/ratelimit) would
// make another attempt wait, or the upstream asked for quiet. A hedge sent
// then would only wait beside the attempt it copies, or take the room of
// another call's first attempt, and add load to an upstream that is slow
// because it is saturated (docs/hedge.md, "Saturation").
type Saturation interface {
	Saturated(now time.Time) bool
}

// SaturationSink receives the Saturation of the upstream an attempt was
// admitted to. The hedge layer's first attempt context answers
// SaturationSinkKey with one; the hedge reads it when its timer fires.
type SaturationSink interface {
	SetSaturation(Saturation)
}

type saturationKey struct{}

// SaturationSinkKey is the context key under which an attempt's context
// carries its SaturationSink. A context implementation answers it from its
// Value method (the hedge layer's does, without a context.WithValue
// allocation); NoteAdmitted looks it up.
var SaturationSinkKey any = saturationKey{}

// NoteAdmitted tells the SaturationSink of ctx, if there is one, that the
// attempt was admitted to an upstream whose saturation s reports. It costs a
// context lookup and nothing when no sink is carried.
func NoteAdmitted(ctx context.Context, s Saturation) {
	if sink, ok := ctx.Value(SaturationSinkKey).(SaturationSink); ok && sink != nil {
		sink.SetSaturation(s)
	}
}
