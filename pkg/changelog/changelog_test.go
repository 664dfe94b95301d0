package changelog

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"
)

func TestEnsureCreatesOnceThenKeeps(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "docs", "CHANGELOGS")
	v := semver.MustParse("1.3.0-rc.2")
	path, created, err := Ensure(dir, v)
	if err != nil || !created {
		t.Fatalf("Ensure = %s, %v, %v; want created", path, created, err)
	}
	if filepath.Base(path) != "1.3.0.md" {
		t.Fatalf("path %s, want …/1.3.0.md", path)
	}
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), "# 1.3.0\n") {
		t.Fatalf("template starts %q", b[:20])
	}
	os.WriteFile(path, []byte("# 1.3.0\n\n- notes written by hand\n"), 0o644)
	if _, created, err := Ensure(dir, semver.MustParse("1.3.0")); err != nil || created {
		t.Fatalf("second Ensure: created=%v err=%v, want untouched", created, err)
	}
	notes, err := Read(dir, semver.MustParse("1.3.0-staging.4"))
	if err != nil || notes != "- notes written by hand" {
		t.Fatalf("Read = %q, %v", notes, err)
	}
}

func TestEnsureUsesRepositoryTemplate(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, TemplateFile), []byte("Release {{.Version}}\n"), 0o644)
	path, _, err := Ensure(dir, semver.MustParse("2.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "Release 2.0.0\n" {
		t.Fatalf("got %q", b)
	}
	os.WriteFile(filepath.Join(dir, TemplateFile), []byte("{{.Nope}}"), 0o644)
	if _, _, err := Ensure(dir, semver.MustParse("2.1.0")); err == nil || !strings.Contains(err.Error(), "only {{.Version}}") {
		t.Fatalf("bad template: %v", err)
	}
}

func TestReadStripsCommentsAndTitle(t *testing.T) {
	dir := t.TempDir()
	v := semver.MustParse("0.4.0")
	if _, _, err := Ensure(dir, v); err != nil {
		t.Fatal(err)
	}
	notes, err := Read(dir, v)
	if err != nil {
		t.Fatal(err)
	}
	if want := "## Added\n\n## Changed\n\n## Fixed"; notes != want {
		t.Fatalf("Read of the template = %q, want %q", notes, want)
	}
}

func TestReadMissing(t *testing.T) {
	_, err := Read(t.TempDir(), semver.MustParse("1.0.0"))
	if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "1.0.0.md is missing") {
		t.Fatalf("err = %v", err)
	}
}
