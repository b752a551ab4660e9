package idempotent

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMethodMatchesMethods(t *testing.T) {
	for _, m := range Methods() {
		if !Method(m) {
			t.Errorf("Method(%q) = false; want true: it is in Methods", m)
		}
	}
	for _, m := range []string{"POST", "PATCH", "CONNECT", "PROPFIND"} {
		if Method(m) {
			t.Errorf("Method(%q) = true; want false", m)
		}
	}
	if !Method("") {
		t.Error(`Method("") = false; want true (net/http reads "" as GET)`)
	}
}
