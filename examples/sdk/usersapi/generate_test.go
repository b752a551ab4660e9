package usersapi

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const generatedFile = "usersapi.gen.go"

// generateArgs returns the arguments of generate.go's go:generate line, so
// the test runs exactly what go generate runs.
func generateArgs(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("generate.go")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "//go:generate "); ok {
			return strings.Fields(rest)
		}
	}
	t.Fatal("generate.go has no //go:generate line")
	return nil
}

// TestGeneratedUpToDate runs the pinned generator into a temp dir and fails
// when the committed file differs, so an edit of api.yaml or cfg.yaml (or a
// new tool version in go.mod) cannot go in without regenerating.
func TestGeneratedUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: builds and runs the code generator")
	}
	args := generateArgs(t)
	if len(args) < 3 || args[0] != "go" || args[1] != "tool" {
		t.Fatalf("go:generate line %q does not run `go tool`", strings.Join(args, " "))
	}
	out := filepath.Join(t.TempDir(), generatedFile)
	found := false
	for i := range args[:len(args)-1] {
		if args[i] == "-o" && args[i+1] == generatedFile {
			args[i+1] = out
			found = true
		}
	}
	if !found {
		t.Fatalf("go:generate line %q does not write %s with -o", strings.Join(args, " "), generatedFile)
	}

	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("cannot check %s: no go command on PATH: %v", generatedFile, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The tool is pinned in examples/go.mod; on a fresh machine the go
	// command fetches it from the module proxy (the one network CI reaches),
	// so the check runs in CI too and a stale generated file fails the build.
	env := os.Environ()
	build := exec.CommandContext(ctx, goCmd, "tool", "-n", args[2])
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("cannot build `go tool %s` to check %s: %v\n%s", args[2], generatedFile, err, b)
	}

	gen := exec.CommandContext(ctx, goCmd, args[1:]...)
	gen.Env = env
	if b, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, b)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(generatedFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of date with api.yaml and cfg.yaml: run `cd examples && go generate ./sdk/usersapi` and commit the result", generatedFile)
	}
}
