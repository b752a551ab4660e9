package refusal

import (
	"errors"
	"fmt"
	"testing"
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
