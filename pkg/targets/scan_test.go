package targets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoistci/hoist/internal/imagefix"
	"github.com/hoistci/hoist/internal/scantest"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/scan"
)

// TestScanTarget calls the Scan target as mage does, on a repository whose
// hoist.yaml names an offline DB: it fails on the vulnerable image, writes
// the reports and the step summary; HOIST_TRIVY_DB then points it at a DB
// without that advisory and it passes.
func TestScanTarget(t *testing.T) { testenv.EachEngine(t, testScanTarget) }

func testScanTarget(t *testing.T) {
	e := testenv.Engine(t)
	ctx := t.Context()
	repo := t.TempDir()
	root := testenv.RepoRoot(t)
	withCVE, err := scantest.WriteDB(ctx, root, filepath.Join(repo, "db-with"), []scantest.Advisory{
		{Source: "debian 12", Package: "openssl", ID: "CVE-2099-1001", Fixed: "3.0.15-1~deb12u1", Severity: "HIGH"},
	})
	if err != nil {
		t.Fatal(err)
	}
	without, err := scantest.WriteDB(ctx, root, filepath.Join(repo, "db-without"), []scantest.Advisory{
		{Source: "debian 12", Package: "bash", ID: "CVE-2099-1009", Fixed: "5.3", Severity: "HIGH"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ref := testenv.Unique("hoist-scantest/app:")
	if _, err := scantest.DebianImage(ctx, e, ref, map[string]string{"openssl": "3.0.11-1~deb12u1"}, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Remove(context.Background(), ref) })
	img, err := imagefix.Record(ctx, e, "app", ref)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(repo, "Dockerfile"), []byte("FROM scratch\n"), 0o644)
	cfg := fmt.Sprintf("project: demo\nimages:\n  - name: app\n    dockerfile: Dockerfile\nscan:\n  db_dir: %s\n  timeout: 2m\n", withCVE)
	os.WriteFile(filepath.Join(repo, "hoist.yaml"), []byte(cfg), 0o644)
	lockPath := filepath.Join(repo, "build", "hoist", "lock.json")
	os.MkdirAll(filepath.Dir(lockPath), 0o755)
	if err := lock.Write(lockPath, &lock.Lock{Project: "demo", Version: "1.0.0", Created: time.Now(),
		Images: []lock.Image{img}}); err != nil {
		t.Fatal(err)
	}
	summary := filepath.Join(repo, "step-summary.md")
	t.Setenv(envConfig, filepath.Join(repo, "hoist.yaml"))
	t.Setenv(envNoEngineUp, "1")
	t.Setenv(envStepSummary, summary)
	t.Setenv(envTrivyDB, "")
	t.Setenv("TRIVY_SEVERITY", "CRITICAL") // must not loosen the gate

	err = Scan(ctx)
	if !errors.Is(err, scan.ErrBreached) || !strings.Contains(err.Error(), "app: openssl 3.0.11-1~deb12u1 (fixed in 3.0.15-1~deb12u1) CVE-2099-1001 [HIGH]") {
		t.Fatalf("Scan = %v, want the breach listed", err)
	}
	for _, f := range []string{"app.trivy.json", "app.sarif", "app.md", "app.txt", "summary.md"} {
		if _, err := os.Stat(filepath.Join(repo, "build", "hoist", "scan", f)); err != nil {
			t.Errorf("report %s: %v", f, err)
		}
	}
	if b, _ := os.ReadFile(summary); !strings.Contains(string(b), "| app | ❌ fail | 1 | 0 | 0 |") {
		t.Errorf("step summary:\n%s", b)
	}

	t.Setenv(envTrivyDB, without)
	if err := Scan(ctx); err != nil {
		t.Fatalf("Scan with HOIST_TRIVY_DB=%s: %v", without, err)
	}
	l, err := lock.Read(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	if s := l.Images[0].Scan; s == nil || !s.Passed || s.ImageID != img.ImageID {
		t.Fatalf("lock scan %+v, want a pass of %s", s, img.ImageID)
	}
}
