package gate

import (
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoistci/hoist/internal/imagefix"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/lock"
)

func TestCompare(t *testing.T) {
	want := lock.Image{Name: "demo", ConfigDigest: "sha256:aaa", DiffIDs: []string{"sha256:1", "sha256:2", "sha256:3"}}
	tests := []struct {
		name       string
		config     string
		diffIDs    []string
		wantLayers []LayerDiff
		wantMsg    []string
	}{
		{name: "identical", config: "sha256:aaa", diffIDs: []string{"sha256:1", "sha256:2", "sha256:3"}},
		{name: "one layer changed", config: "sha256:bbb", diffIDs: []string{"sha256:1", "sha256:X", "sha256:3"},
			wantLayers: []LayerDiff{{Index: 1, Want: "sha256:2", Got: "sha256:X"}}, wantMsg: []string{"layer 2 is sha256:X, tested sha256:2", "config sha256:bbb, tested sha256:aaa"}},
		{name: "layer added", config: "sha256:ccc", diffIDs: []string{"sha256:1", "sha256:2", "sha256:3", "sha256:4"},
			wantLayers: []LayerDiff{{Index: 3, Got: "sha256:4"}}, wantMsg: []string{"layer 4 sha256:4 was not tested"}},
		{name: "layer missing", config: "sha256:ddd", diffIDs: []string{"sha256:1", "sha256:2"},
			wantLayers: []LayerDiff{{Index: 2, Want: "sha256:3"}}, wantMsg: []string{"layer 3 sha256:3 is missing"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Compare(want, "engine image x", tc.config, tc.diffIDs)
			if tc.wantLayers == nil {
				if err != nil {
					t.Fatalf("Compare = %v, want nil", err)
				}
				return
			}
			var me *MismatchError
			if !errors.As(err, &me) {
				t.Fatalf("Compare = %v, want a *MismatchError", err)
			}
			if len(me.Layers) != len(tc.wantLayers) {
				t.Fatalf("layers %+v, want %+v", me.Layers, tc.wantLayers)
			}
			for i := range me.Layers {
				if me.Layers[i] != tc.wantLayers[i] {
					t.Errorf("layer %d: %+v, want %+v", i, me.Layers[i], tc.wantLayers[i])
				}
			}
			for _, m := range append(tc.wantMsg, "demo", "do not push") {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("message %q lacks %q", err, m)
				}
			}
		})
	}
}

// TestEngineRefusesTamperedImage builds and "tests" an image, then changes
// one layer and rebuilds it under the same reference, as a stale cache or a
// race would: the gate must refuse it and name the layer.
func TestEngineRefusesTamperedImage(t *testing.T) {
	testenv.EachEngine(t, testEngineRefusesTamperedImage)
}

func testEngineRefusesTamperedImage(t *testing.T) {
	e := testenv.Engine(t)
	b := testenv.Builder(t, e)
	base := testenv.BusyboxBase(t, e)
	ref := testenv.Unique("hoist-test/gate:") + "x"
	t.Cleanup(func() { e.Remove(context.Background(), ref) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	files := func(second string) map[string][]byte {
		one := make([]byte, 4096)
		copy(one, "stable")
		return map[string][]byte{"a-one": one, "b-two": []byte(second)}
	}
	tested, err := imagefix.Build(ctx, e, b, base, imagefix.Spec{Name: "demo", Ref: ref, Files: files("tested")}, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := Engine(ctx, e, tested); err != nil {
		t.Fatalf("gate on the tested image: %v", err)
	}
	nonce := make([]byte, 8)
	rand.Read(nonce)
	if _, err := imagefix.Build(ctx, e, b, base, imagefix.Spec{Name: "demo", Ref: ref, Files: files("tampered " + string(nonce))}, false); err != nil {
		t.Fatal(err)
	}
	err = Engine(ctx, e, tested)
	var me *MismatchError
	if !errors.As(err, &me) {
		t.Fatalf("gate on a tampered image = %v, want a mismatch", err)
	}
	n := len(tested.DiffIDs)
	if len(me.Layers) != 1 || me.Layers[0].Index != n-1 || me.Layers[0].Want != tested.DiffIDs[n-1] {
		t.Fatalf("mismatch %+v, want only the last layer (%d) named", me.Layers, n)
	}
	if me.WantConfig != tested.ConfigDigest || me.GotConfig == tested.ConfigDigest {
		t.Errorf("config want %s got %s", me.WantConfig, me.GotConfig)
	}
}

func TestTested(t *testing.T) {
	id := "sha256:abc"
	tests := []struct {
		name string
		img  lock.Image
		want string
	}{
		{name: "passed", img: lock.Image{Name: "x", ImageID: id, ConfigDigest: id, Test: &lock.Test{Passed: true, ImageID: id}}},
		{name: "no test", img: lock.Image{Name: "x", ImageID: id, ConfigDigest: id}, want: "run the Test target"},
		{name: "failed", img: lock.Image{Name: "x", ImageID: id, ConfigDigest: id, Test: &lock.Test{ImageID: id, ExitCode: 1}}, want: "failed its test"},
		{name: "other build", img: lock.Image{Name: "x", ImageID: id, ConfigDigest: id, Test: &lock.Test{Passed: true, ImageID: "sha256:old"}}, want: "rebuilt after its test"},
		{name: "damaged lock", img: lock.Image{Name: "x", ImageID: id, ConfigDigest: "sha256:zzz", Test: &lock.Test{Passed: true, ImageID: id}}, want: "damaged"},
		{name: "containerd store: ID is the manifest's", img: lock.Image{Name: "x", ImageID: id, ConfigDigest: "sha256:zzz", Store: "containerd", Test: &lock.Test{Passed: true, ImageID: id}}},
		{name: "no config digest", img: lock.Image{Name: "x", ImageID: id, Store: "containerd", Test: &lock.Test{Passed: true, ImageID: id}}, want: "damaged"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Tested(tc.img)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "x") {
				t.Fatalf("Tested = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestRebuiltLock(t *testing.T) {
	id := "sha256:aaa"
	tested := lock.Image{Name: "api", Ref: "p/api:1", ImageID: id, ConfigDigest: id, DiffIDs: []string{"sha256:1", "sha256:2"}, Test: &lock.Test{Passed: true, ImageID: id}}
	tests := []struct {
		name    string
		rebuilt []lock.Image
		wantN   int
		wantErr string
	}{
		{name: "same bytes", rebuilt: []lock.Image{{Name: "api", Ref: "p/api:1", ImageID: id, ConfigDigest: id, DiffIDs: []string{"sha256:1", "sha256:2"}}}, wantN: 1},
		// On a containerd store the ID is a manifest's digest: the config
		// and layers are what must match.
		{name: "same bytes, rebuilt on a containerd store", rebuilt: []lock.Image{{Name: "api", Ref: "p/api:1", ImageID: "sha256:ccc", ConfigDigest: id, DiffIDs: []string{"sha256:1", "sha256:2"}, Store: "containerd"}}, wantN: 1},
		{name: "cache gave another layer", rebuilt: []lock.Image{{Name: "api", Ref: "p/api:1", ImageID: "sha256:bbb", ConfigDigest: "sha256:bbb", DiffIDs: []string{"sha256:1", "sha256:9"}}}, wantErr: "layer 2 is sha256:9, tested sha256:2"},
		{name: "not rebuilt", rebuilt: nil, wantErr: "api was not rebuilt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "lock.json")
			if err := lock.Write(path, &lock.Lock{Images: []lock.Image{tested}}); err != nil {
				t.Fatal(err)
			}
			n, err := RebuiltLock(context.Background(), path, dir, func(_ context.Context, p string) error {
				return lock.Write(p, &lock.Lock{Images: tc.rebuilt})
			})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || n != tc.wantN {
				t.Fatalf("RebuiltLock = %d, %v", n, err)
			}
		})
	}
}
