package gate

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoistci/hoist/internal/imagefix"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/lock"
)

// TestEnginePlatforms: the engine gate checks every platform's image of an
// image with platforms against its own record and its own test.
func TestEnginePlatforms(t *testing.T) { testenv.EachEngine(t, testEnginePlatforms) }

func testEnginePlatforms(t *testing.T) {
	e := testenv.Engine(t)
	ctx := context.Background()
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, map[string]string{"Dockerfile": "FROM scratch\nARG TARGETARCH\nCOPY Dockerfile /built-for-${TARGETARCH}\n"})
	b := testenv.Builder(t, e)
	name := testenv.Unique("gateplat")
	img := lock.Image{Name: name}
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		ref := "hoist-test/" + name + ":1.0.0"
		if p != "linux/amd64" {
			ref += "-" + strings.ReplaceAll(p, "/", "-")
		}
		if _, err := b.Build(ctx, engine.BuildRequest{ContextDir: dir, Dockerfile: filepath.Join(dir, "Dockerfile"), Tags: []string{ref}, Platform: p}, io.Discard); err != nil {
			t.Fatalf("building for %s: %v", p, err)
		}
		t.Cleanup(func() { e.Remove(context.Background(), ref) })
		rec, err := imagefix.Record(ctx, e, name, ref)
		if err != nil {
			t.Fatal(err)
		}
		if img.Ref == "" {
			img = rec
		}
		test := &lock.Test{Passed: true, At: time.Now().UTC(), ImageID: rec.ImageID}
		img.Platforms = append(img.Platforms, lock.Platform{Platform: p, Ref: ref, ImageID: rec.ImageID, ConfigDigest: rec.ConfigDigest, DiffIDs: rec.DiffIDs, Test: test})
	}
	img.Test = img.PlatformsTest()
	if err := Engine(ctx, e, img); err != nil {
		t.Fatalf("gate on the tested platforms: %v", err)
	}
	if errs := EngineAll(ctx, e, []lock.Image{img}); errs[0] != nil {
		t.Fatalf("EngineAll on the tested platforms: %v", errs[0])
	}

	// arm64 failed its test: the image as a whole did not pass.
	failed := img
	failed.Platforms = append([]lock.Platform(nil), img.Platforms...)
	failed.Platforms[1].Test = &lock.Test{Passed: false, ExitCode: 1, Log: "test-x-linux-arm64.log", ImageID: img.Platforms[1].ImageID}
	failed.Test = failed.PlatformsTest()
	if err := Engine(ctx, e, failed); !errors.Is(err, ErrUntested) || !strings.Contains(err.Error(), "test-x-linux-arm64.log") {
		t.Fatalf("gate with arm64 failing = %v, want ErrUntested naming its log", err)
	}

	// The arm64 reference now names other bytes (the amd64 image).
	if err := e.Tag(ctx, img.Platforms[0].Ref, img.Platforms[1].Ref); err != nil {
		t.Fatal(err)
	}
	err := Engine(ctx, e, img)
	var me *MismatchError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), name+" (linux/arm64)") {
		t.Fatalf("gate with arm64 swapped = %v, want a mismatch naming %s (linux/arm64)", err, name)
	}
	if errs := EngineAll(ctx, e, []lock.Image{img}); !errors.As(errs[0], &me) {
		t.Fatalf("EngineAll with arm64 swapped = %v, want a mismatch", errs[0])
	}
}
