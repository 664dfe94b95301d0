package ctest_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/ctest"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/lock"
)

// buildPlatforms builds a FROM-scratch image holding the probe for each
// platform and returns the lock records of them.
func buildPlatforms(t *testing.T, e *engine.Engine, platforms ...string) []lock.Platform {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	var arches []string
	for _, p := range platforms {
		arches = append(arches, strings.Split(p, "/")[1])
	}
	testenv.Probe(t, dir, arches...)
	testenv.WriteFiles(t, dir, map[string]string{"Dockerfile": "FROM scratch\nARG TARGETARCH\nCOPY probe-${TARGETARCH} /probe\n"})
	b := testenv.Builder(t, e)
	var recs []lock.Platform
	for _, p := range platforms {
		ref := testenv.Unique("hoist-test/ctest-platforms:") + "-" + strings.ReplaceAll(p, "/", "-")
		if _, err := b.Build(ctx, engine.BuildRequest{ContextDir: dir, Dockerfile: filepath.Join(dir, "Dockerfile"), Tags: []string{ref}, Platform: p}, io.Discard); err != nil {
			t.Fatalf("building for %s: %v", p, err)
		}
		t.Cleanup(func() { e.Remove(context.Background(), ref) })
		img, err := e.Inspect(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, lock.Platform{Platform: p, Ref: ref, ImageID: img.ID})
	}
	return recs
}

func TestRunPlatforms(t *testing.T) { testenv.EachEngine(t, testRunPlatforms) }

func testRunPlatforms(t *testing.T) {
	e := testenv.Engine(t)
	testenv.Arm64(t, e)
	recs := buildPlatforms(t, e, "linux/amd64", "linux/arm64")
	dir := t.TempDir()
	lockPath := filepath.Join(dir, "lock.json")
	name := testenv.Unique("armfails-")
	if err := lock.Update(lockPath, func(l *lock.Lock) error {
		l.Put(lock.Image{Name: name, ImageID: recs[0].ImageID, Platforms: recs})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var cases []ctest.Case
	for _, p := range recs {
		cases = append(cases, ctest.Case{Name: name, Ref: p.Ref, ImageID: p.ImageID, Platform: p.Platform, Command: []string{"/probe", "fail-on", "aarch64"}})
	}
	var sum strings.Builder
	res, err := ctest.Run(context.Background(), e.API, cases, ctest.Options{LogDir: dir, Parallel: 2, LockPath: lockPath, Summary: &sum})
	if !errors.Is(err, ctest.ErrFailed) || !strings.Contains(err.Error(), name+" (linux/arm64)") || strings.Contains(err.Error(), "amd64") {
		t.Fatalf("got %v, want ErrFailed naming %s on linux/arm64 only", err, name)
	}
	for i, want := range []struct {
		passed  bool
		machine string
	}{{true, "x86_64"}, {false, "aarch64"}} {
		r := res[i]
		if r.Passed != want.passed || r.Platform != recs[i].Platform || r.Err != nil {
			t.Errorf("%s: passed=%v err=%v, want passed=%v", recs[i].Platform, r.Passed, r.Err, want.passed)
		}
		log, err := os.ReadFile(r.Log)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(log), "running on "+want.machine) || !strings.HasSuffix(r.Log, "-"+strings.ReplaceAll(recs[i].Platform, "/", "-")+".log") {
			t.Errorf("%s: log %s says %q, want it to run on %s", recs[i].Platform, r.Log, log, want.machine)
		}
	}
	if !strings.Contains(sum.String(), name+" (linux/arm64)") || !strings.Contains(sum.String(), "1 of 2 container tests passed") {
		t.Errorf("summary:\n%s", sum.String())
	}
	l, err := lock.Read(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := l.Find(name)
	amd, _ := img.FindPlatform("linux/amd64")
	arm, _ := img.FindPlatform("linux/arm64")
	if amd.Test == nil || !amd.Test.Passed || amd.Test.ImageID != amd.ImageID {
		t.Errorf("amd64 recorded %+v, want passed on its image", amd.Test)
	}
	if arm.Test == nil || arm.Test.Passed || arm.Test.ExitCode != 1 || arm.Test.ImageID != arm.ImageID {
		t.Errorf("arm64 recorded %+v, want failed with exit 1", arm.Test)
	}
	if img.Test == nil || img.Test.Passed || img.Test.Log != arm.Test.Log || img.Test.ImageID != img.ImageID {
		t.Errorf("the image as a whole recorded %+v, want failed with arm64's log", img.Test)
	}
}
