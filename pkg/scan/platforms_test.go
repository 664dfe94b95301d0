package scan_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistci/hoist/internal/imagefix"
	"github.com/hoistci/hoist/internal/scantest"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/scan"
)

// TestScanPlatforms scans an image built for linux/amd64 and linux/arm64
// whose arm64 image alone holds a vulnerable openssl: the arm64 scan
// blocks, the amd64 one passes, and the image as a whole does not.
func TestScanPlatforms(t *testing.T) { testenv.EachEngine(t, testScanPlatforms) }

func testScanPlatforms(t *testing.T) {
	e := testenv.Engine(t)
	ctx := t.Context()
	dir := t.TempDir()
	dbDir, err := scantest.WriteDB(ctx, testenv.RepoRoot(t), filepath.Join(dir, "trivy-db"), advisories)
	if err != nil {
		t.Fatal(err)
	}
	osRelease := "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n"
	ctxDir := filepath.Join(dir, "ctx")
	testenv.WriteFiles(t, ctxDir, map[string]string{
		"debian_version": "12.2\n",
		"os-release":     osRelease,
		"status-amd64":   scantest.DpkgStatus(map[string]string{"openssl": "3.0.15-1~deb12u1"}),
		"status-arm64":   scantest.DpkgStatus(map[string]string{"openssl": "3.0.11-1~deb12u1"}),
		"Dockerfile":     "FROM scratch\nARG TARGETARCH\nCOPY debian_version /etc/debian_version\nCOPY os-release /etc/os-release\nCOPY status-${TARGETARCH} /var/lib/dpkg/status\n",
	})
	b := testenv.Builder(t, e)
	name := testenv.Unique("multi")
	var primary lock.Image
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		ref := "hoist-scantest/" + name + ":1.0.0-" + strings.ReplaceAll(p, "/", "-")
		if _, err := b.Build(ctx, engine.BuildRequest{ContextDir: ctxDir, Dockerfile: filepath.Join(ctxDir, "Dockerfile"), Tags: []string{ref}, Platform: p}, io.Discard); err != nil {
			t.Fatalf("building for %s: %v", p, err)
		}
		t.Cleanup(func() { e.Remove(context.Background(), ref) })
		rec, err := imagefix.Record(ctx, e, name, ref)
		if err != nil {
			t.Fatal(err)
		}
		if primary.Name == "" {
			primary = rec
		}
		primary.Platforms = append(primary.Platforms, lock.Platform{Platform: p, Ref: ref, ImageID: rec.ImageID, ConfigDigest: rec.ConfigDigest, DiffIDs: rec.DiffIDs})
	}
	f := &fixture{e: e, dbDir: dbDir, lockPath: filepath.Join(dir, "build", "lock.json"), out: filepath.Join(dir, "build", "scan")}
	if err := imagefix.WriteLock(f.lockPath, "1.0.0", primary); err != nil {
		t.Fatal(err)
	}
	o := f.options(t, basePolicy())
	var out bytes.Buffer
	o.Out = &out
	res, err := scan.Run(ctx, o)
	t.Logf("terminal output:\n%s", out.String())
	if !errors.Is(err, scan.ErrBreached) || errors.Is(err, scan.ErrNotScanned) {
		t.Fatalf("Run error %v, want ErrBreached only", err)
	}
	if msg := err.Error(); !strings.Contains(msg, name+"-linux-arm64: openssl 3.0.11-1~deb12u1") || strings.Contains(msg, name+"-linux-amd64") {
		t.Errorf("error does not name the arm64 image alone:\n%s", msg)
	}
	if len(res.Images) != 2 {
		t.Fatalf("%d results, want one per platform", len(res.Images))
	}
	for i, want := range []struct {
		platform string
		passed   bool
	}{{"linux/amd64", true}, {"linux/arm64", false}} {
		r := res.Images[i]
		if r.Image != name || r.Platform != want.platform || r.Passed() != want.passed || r.Err != nil || r.OS != "debian 12.2" {
			t.Errorf("result %d: %+v, want %s passed=%v", i, r, want.platform, want.passed)
		}
		if _, err := os.Stat(filepath.Join(f.out, name+"-"+strings.ReplaceAll(want.platform, "/", "-")+".trivy.json")); err != nil {
			t.Errorf("%s: no report: %v", want.platform, err)
		}
	}
	l, err := lock.Read(f.lockPath)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := l.Find(name)
	amd, _ := img.FindPlatform("linux/amd64")
	arm, _ := img.FindPlatform("linux/arm64")
	if amd.Scan == nil || !amd.Scan.Passed || amd.Scan.ImageID != amd.ImageID {
		t.Errorf("amd64 scan recorded %+v, want passed", amd.Scan)
	}
	if arm.Scan == nil || arm.Scan.Passed || len(arm.Scan.Findings) == 0 || arm.Scan.Findings[0].ID != "CVE-2099-1001" {
		t.Errorf("arm64 scan recorded %+v, want CVE-2099-1001 blocking", arm.Scan)
	}
	if img.Scan == nil || img.Scan.Passed || img.Scan.ImageID != img.ImageID || len(img.Scan.Reports) != len(amd.Scan.Reports)+len(arm.Scan.Reports) {
		t.Errorf("the image as a whole recorded %+v, want failed with both platforms' reports", img.Scan)
	}
}
