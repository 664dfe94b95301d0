package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGoBase(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "cmd/tool"), 0o755)
	os.MkdirAll(filepath.Join(dir, "empty"), 0o755)
	os.WriteFile(filepath.Join(dir, "cmd/tool/main.go"), []byte("package main\nfunc main() {}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM demo/base:1\n"), 0o644)
	cfg := func(goLine string) string {
		return "project: demo\nbases:\n  - ref: demo/base:1\n    " + goLine + "\nimages:\n  - {name: app, dockerfile: Dockerfile}\n"
	}
	for _, tc := range []struct {
		name, goLine, want string
	}{
		{name: "good", goLine: "go: {/bin/tool: ./cmd/tool}"},
		{name: "relative in image", goLine: "go: {bin/tool: ./cmd/tool}", want: `hoist.yaml:3: base demo/base:1: go: "bin/tool" must be a file path in the image`},
		{name: "folder in image", goLine: "go: {/bin/: ./cmd/tool}", want: "must be a file path in the image"},
		{name: "missing package", goLine: "go: {/bin/tool: ./cmd/none}", want: "./cmd/none is not a folder of Go files"},
		{name: "no go files", goLine: "go: {/bin/tool: ./empty}", want: "./empty is not a folder of Go files"},
		{name: "unknown key", goLine: "gopkg: {/bin/tool: ./cmd/tool}", want: "gopkg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("hoist.yaml", dir, []byte(cfg(tc.goLine)))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := c.Bases[0].Go["/bin/tool"]; got != "./cmd/tool" {
					t.Errorf("go entry: %q", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error containing %q, got %v", tc.want, err)
			}
		})
	}
}
