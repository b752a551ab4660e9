package refusal

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

type refused bool

func (r refused) Error() string      { return "refused" }
func (r refused) LocalRefusal() bool { return bool(r) }

func TestIsLocal(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain error", errors.New("boom"), false},
		{"refusal", refused(true), true},
		{"refusal reporting false", refused(false), false},
		{"wrapped refusal", fmt.Errorf("retry: 1 attempt: %w", refused(true)), true},
		{"joined", errors.Join(errors.New("a"), refused(true)), true},
	} {
		if got := IsLocal(tc.err); got != tc.want {
			t.Errorf("%s: IsLocal(%v) = %v; want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

type probing struct {
	refused
	in time.Duration
	ch chan struct{}
}

func (p probing) NextProbe() (time.Duration, <-chan struct{}) { return p.in, p.ch }

func TestAsProbe(t *testing.T) {
	ch := make(chan struct{})
	p := probing{refused: true, in: time.Second, ch: ch}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain refusal", refused(true), false},
		{"probe", p, true},
		{"wrapped probe", fmt.Errorf("retry: 1 attempt: %w", p), true},
	} {
		got, ok := AsProbe(tc.err)
		if ok != tc.want {
			t.Errorf("%s: AsProbe ok = %v; want %v", tc.name, ok, tc.want)
			continue
		}
		if ok {
			if in, c := got.NextProbe(); in != time.Second || c != (<-chan struct{})(ch) {
				t.Errorf("%s: NextProbe() = %v, %v; want 1s and the breaker's channel", tc.name, in, c)
			}
		}
	}
}
