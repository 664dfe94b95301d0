package gobin

import (
	"context"
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistci/hoist/internal/testenv"
)

func TestBuild(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, map[string]string{
		"go.mod":           "module example.com/m\n\ngo 1.22\n",
		"cmd/hi/main.go":   "package main\n\nfunc main() { println(\"hi\") }\n",
		"lib/lib.go":       "package lib\n",
		"sub/go.mod":       "module example.com/sub\n",
		"sub/unrelated.go": "package sub\n",
	})
	out := filepath.Join(dir, "out", "hi")
	o := Options{Arch: "arm64", Env: os.Environ()}
	if err := Build(ctx, filepath.Join(dir, "cmd/hi"), out, o); err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	if f.Machine != elf.EM_AARCH64 {
		t.Errorf("built for %v, want arm64", f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary asks for a dynamic loader: it is not static")
		}
	}
	f.Close()

	// Nothing changed: the go command is not run at all (a missing one
	// would fail), and neither a nested module's file changes that.
	noGo := Options{Arch: "arm64", Go: filepath.Join(dir, "no-such-go")}
	os.WriteFile(filepath.Join(dir, "sub/unrelated.go"), []byte("package sub\n\nvar X = 1\n"), 0o644)
	if err := Build(ctx, filepath.Join(dir, "cmd/hi"), out, noGo); err != nil {
		t.Fatalf("unchanged sources ran the go command: %v", err)
	}
	// Any Go file of the module changed, or another architecture: built again.
	os.WriteFile(filepath.Join(dir, "lib/lib.go"), []byte("package lib\n\nvar Y = 2\n"), 0o644)
	if err := Build(ctx, filepath.Join(dir, "cmd/hi"), out, noGo); err == nil || !strings.Contains(err.Error(), "not on PATH") {
		t.Fatalf("a changed module file did not rebuild: %v", err)
	}
	if err := Build(ctx, filepath.Join(dir, "cmd/hi"), out, o); err != nil {
		t.Fatal(err)
	}
	if err := Build(ctx, filepath.Join(dir, "cmd/hi"), out, Options{Arch: "amd64", Go: noGo.Go}); err == nil {
		t.Fatal("another architecture reused the arm64 binary")
	}
}

func TestBuildError(t *testing.T) {
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, map[string]string{
		"go.mod":  "module example.com/m\n",
		"main.go": "package main\n\nfunc main() { undefined() }\n",
	})
	out := filepath.Join(dir, "bin")
	err := Build(context.Background(), dir, out, Options{Arch: "amd64", Env: os.Environ()})
	if err == nil || !strings.Contains(err.Error(), "undefined") || !strings.Contains(err.Error(), "linux/amd64") {
		t.Fatalf("want the compiler's message, got %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed build left a binary")
	}
	if _, err := os.Stat(out + ".tmp"); err == nil {
		t.Error("a failed build left its temporary file")
	}
	if err := Build(context.Background(), t.TempDir(), out, Options{Arch: "amd64"}); err == nil || !strings.Contains(err.Error(), "not inside a Go module") {
		t.Errorf("outside a module: %v", err)
	}
}
