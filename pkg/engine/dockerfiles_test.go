package engine_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/engine"
)

// Builds from one context folder, each with its own Dockerfile of the same
// size and modification time (a matrix's rendered templates, or a fresh
// clone's Dockerfiles, written within one clock tick): each builds what
// its own Dockerfile says. An engine whose BuildKit compares synced files
// by size and time, under one key for every build's Dockerfile, handed the
// second build the first one's Dockerfile.
func TestBuildsKeepTheirOwnDockerfiles(t *testing.T) {
	testenv.EachEngine(t, func(t *testing.T) {
		e := testenv.Engine(t)
		b := testenv.Builder(t, e)
		base := testenv.BusyboxBase(t, e)
		ctxDir := t.TempDir()
		if err := os.WriteFile(filepath.Join(ctxDir, "f"), []byte("shared\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		stamp := time.Unix(1700000000, 0)
		run := testenv.Unique("")
		for i := range 3 {
			df := filepath.Join(t.TempDir(), "Dockerfile")
			if err := os.WriteFile(df, fmt.Appendf(nil, "FROM %s\nCOPY f /f\nRUN echo %s-%02d > /n\n", base, run, i), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(df, stamp, stamp); err != nil {
				t.Fatal(err)
			}
			ref := testenv.Unique("hoist-test/dockerfiles-") + fmt.Sprintf(":%02d", i)
			if _, err := b.Build(ctx, engine.BuildRequest{ContextDir: ctxDir, Dockerfile: df, Tags: []string{ref}}, io.Discard); err != nil {
				t.Fatalf("build %d: %v", i, err)
			}
			t.Cleanup(func() { e.Remove(context.Background(), ref) })
			h, err := e.API.ImageHistory(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("echo %s-%02d > /n", run, i)
			if len(h) == 0 || !strings.Contains(h[0].CreatedBy, want) {
				t.Fatalf("build %d ran another Dockerfile: its last step is %q, want %q", i, h[0].CreatedBy, want)
			}
		}
	})
}

// Builds from different context folders whose files have the same names,
// sizes and modification times (a fresh clone's services) each copy their
// own files.
func TestBuildsKeepTheirOwnContexts(t *testing.T) {
	testenv.EachEngine(t, func(t *testing.T) {
		e := testenv.Engine(t)
		b := testenv.Builder(t, e)
		base := testenv.BusyboxBase(t, e)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		stamp := time.Unix(1700000000, 0)
		run := testenv.Unique("")
		for i := range 3 {
			dir := t.TempDir()
			want := fmt.Sprintf("%s-%02d", run, i)
			for name, body := range map[string]string{
				"f":          want + "\n",
				"Dockerfile": fmt.Sprintf("FROM %s\nCOPY f /f\nRUN test \"$(cat /f)\" = %s\n", base, want),
			} {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(p, stamp, stamp); err != nil {
					t.Fatal(err)
				}
			}
			ref := testenv.Unique("hoist-test/contexts-") + fmt.Sprintf(":%02d", i)
			if _, err := b.Build(ctx, engine.BuildRequest{ContextDir: dir, Dockerfile: filepath.Join(dir, "Dockerfile"), Tags: []string{ref}}, io.Discard); err != nil {
				t.Fatalf("build %d copied another context's file: %v", i, err)
			}
			t.Cleanup(func() { e.Remove(context.Background(), ref) })
		}
	})
}
