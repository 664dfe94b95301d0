package scan

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hoistci/hoist/internal/imagefix"
	"github.com/hoistci/hoist/internal/scantest"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/dockersave"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/trivy"
)

// TestServerCrash kills the real trivy server under a scan: the image's
// result is an error naming the crash, never findings (so never a pass).
// Then a Trivy client fails on its own.
func TestServerCrash(t *testing.T) { testenv.EachEngine(t, testServerCrash) }

func testServerCrash(t *testing.T) {
	e := testenv.Engine(t)
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Minute)
	defer cancel()
	cache, _ := os.UserCacheDir()
	tool, err := trivy.Ensure(ctx, trivy.Options{Dir: filepath.Join(cache, "hoist", "tools")})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dbDir, err := scantest.WriteDB(ctx, testenv.RepoRoot(t), filepath.Join(dir, "db-src"), []scantest.Advisory{
		{Source: "debian 12", Package: "openssl", ID: "CVE-2099-1001", Fixed: "3.0.15-1~deb12u1", Severity: "HIGH"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ref := testenv.Unique("hoist-scantest/crash:")
	id, err := scantest.DebianImage(ctx, e, ref, map[string]string{"openssl": "3.0.11-1~deb12u1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Remove(context.Background(), ref) })
	cacheDir := filepath.Join(dir, "cache")
	if _, err := prepareOfflineDB(dbDir, cacheDir); err != nil {
		t.Fatal(err)
	}
	srv, err := startServer(ctx, tool.Path, cacheDir, dir, true, "")
	if err != nil {
		t.Fatal(err)
	}
	srv.cmd.Process.Kill()
	<-srv.done
	img, err := imagefix.Record(ctx, e, "crash", ref)
	if err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(dir, "layout")
	if err := saveLayout(ctx, e, []lock.Image{img}, layout); err != nil {
		t.Fatal(err)
	}
	o := Options{Engine: e, CacheDir: cacheDir, OutDir: dir, Timeout: time.Minute,
		Policy: Policy{Severity: []string{"HIGH"}, Scanners: []string{"vuln"}},
		Trivy:  trivy.Options{Dir: filepath.Join(cache, "hoist", "tools")}, Parallel: 1}
	// Each case runs as a trivy process, and in a worker (Trivy's own
	// command line, in a process that outlives one scan).
	var reports [2][]byte
	for k, inWorker := range []bool{false, true} {
		var pool *workers
		if inWorker {
			if pool = newWorkers(o, tool, dir); pool == nil {
				t.Fatalf("trivy came from %s, not the tools folder: no workers", tool.Path)
			}
			pool.prepare(ctx) // as Run does: a first build is not one scan's
		}
		r := scanImage(ctx, o, srv, tool, pool, img, layout, true, dir)
		if r.Err == nil || !strings.Contains(r.Err.Error(), "trivy server stopped during the scan (signal: killed)") {
			t.Fatalf("in a worker %v: result err %v, findings %v: want the crash named", inWorker, r.Err, r.Findings)
		}
		if r.Passed() {
			t.Fatal("an image scanned against a crashed server passed")
		}

		// A Trivy client that fails (here: asked for an image the layout
		// does not hold) is one line with Trivy's own reason, never a pass.
		srv2, err := startServer(ctx, tool.Path, cacheDir, dir, true, "")
		if err != nil {
			t.Fatal(err)
		}
		r = scanImage(ctx, o, srv2, tool, pool, lock.Image{Name: "absent", Ref: ref, ImageID: id}, layout, true, dir)
		if r.Err == nil || !strings.Contains(r.Err.Error(), "scanning absent: trivy failed") || !strings.Contains(r.Err.Error(), "invalid OCI image ref") || strings.Contains(r.Err.Error(), "\n") {
			t.Fatalf("in a worker %v: result err %v: want one line naming Trivy's failure", inWorker, r.Err)
		}
		if r.Passed() {
			t.Fatal("an image Trivy failed on passed")
		}
		// And the same worker scans the image for real afterwards.
		r = scanImage(ctx, o, srv2, tool, pool, img, layout, true, dir)
		srv2.stop()
		if r.Err != nil || len(r.Findings) == 0 {
			t.Fatalf("in a worker %v: scan after a failure: err %v, findings %v", inWorker, r.Err, r.Findings)
		}
		b, err := os.ReadFile(r.Reports[0])
		if err != nil {
			t.Fatal(err)
		}
		reports[k] = createdAt.ReplaceAll(b, nil)
		if inWorker && (pool.failed != nil || len(pool.idle) != 1) {
			t.Fatalf("workers: failed %v, %d idle: want the one worker kept", pool.failed, len(pool.idle))
		}
		pool.close()
	}
	// The worker's report is the trivy binary's, but for its time.
	if !bytes.Equal(reports[0], reports[1]) {
		t.Fatalf("the worker's report differs from trivy's:\n%s\n%s", reports[1], reports[0])
	}
}

var createdAt = regexp.MustCompile(`"CreatedAt": "[^"]*"`)

// TestSaveLayoutSharesLayers exports two images built on one base with one
// engine export: the layout holds the base layer once, and each image under
// its name with the lock file's image ID as its config digest.
func TestSaveLayoutSharesLayers(t *testing.T) { testenv.EachEngine(t, testSaveLayoutSharesLayers) }

func testSaveLayoutSharesLayers(t *testing.T) {
	e := testenv.Engine(t)
	ctx := t.Context()
	base := testenv.Unique("hoist-scantest/base:")
	if _, err := scantest.DebianImage(ctx, e, base, map[string]string{"libc6": "2.36-9+deb12u4"}, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Remove(context.Background(), base) })
	var imgs []lock.Image
	for _, name := range []string{"one", "two"} {
		ref := testenv.Unique("hoist-scantest/" + name + ":")
		if _, err := scantest.AddLayer(ctx, e, base, ref, map[string]string{"/app/" + name: name}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Remove(context.Background(), ref) })
		img, err := imagefix.Record(ctx, e, name, ref)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	dir := filepath.Join(t.TempDir(), "layout")
	if err := saveLayout(ctx, e, imgs, dir); err != nil {
		t.Fatal(err)
	}
	var index struct {
		Manifests []dockersave.Descriptor `json:"manifests"`
	}
	b, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	if err := json.Unmarshal(b, &index); err != nil || len(index.Manifests) != 2 {
		t.Fatalf("index.json: %v\n%s", err, b)
	}
	layers := map[string]int{}
	byName := map[string]int{}
	for i, img := range imgs {
		byName[img.Name] = i
	}
	// The engine lists images in docker save output in an order of its own;
	// each must carry its own name and its own config, whatever the order.
	for _, m := range index.Manifests {
		name := m.Annotations["org.opencontainers.image.ref.name"]
		i, ok := byName[name]
		if !ok {
			t.Fatalf("manifest %s named %q, want one of one, two", m.Digest, name)
		}
		delete(byName, name)
		var man dockersave.Manifest
		mb, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(m.Digest, "sha256:")))
		if err != nil || json.Unmarshal(mb, &man) != nil {
			t.Fatalf("manifest %s: %v", m.Digest, err)
		}
		if man.Config.Digest != imgs[i].ConfigDigest || len(man.Layers) != 2 {
			t.Errorf("%s: config %s, %d layers; want %s and 2", imgs[i].Name, man.Config.Digest, len(man.Layers), imgs[i].ConfigDigest)
		}
		for _, l := range man.Layers {
			layers[l.Digest]++
			if _, err := os.Stat(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(l.Digest, "sha256:"))); err != nil {
				t.Errorf("layer blob %s: %v", l.Digest, err)
			}
		}
	}
	if len(layers) != 3 {
		t.Errorf("%d distinct layers, want 3 (the base once, one per image): %v", len(layers), layers)
	}
}
