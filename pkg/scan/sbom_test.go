package scan_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/scan"
)

// TestScanWritesSBOM: with an SBOM format set, the one Trivy run that
// scans also yields each image's SBOM (CycloneDX or SPDX JSON) listing the
// image's packages, recorded in the lock file with its digest; a reused
// report (unchanged image) yields it too.
func TestScanWritesSBOM(t *testing.T) { testenv.EachEngine(t, testScanWritesSBOM) }

func testScanWritesSBOM(t *testing.T) {
	f := newFixture(t, map[string]map[string]string{"clean": {"bash": "5.2.15-2+b2", "zlib1g": "1:1.2.13.dfsg-1+deb12u1"}}, nil)
	for _, tt := range []struct {
		format, key, want string
	}{
		{scan.SBOMCycloneDX, "bomFormat", "CycloneDX"},
		{scan.SBOMSPDX, "spdxVersion", "SPDX-2.3"},
	} {
		t.Run(tt.format, func(t *testing.T) {
			o := f.options(t, basePolicy())
			o.SBOM = tt.format
			for run := range 2 {
				res, err := scan.Run(t.Context(), o)
				if err != nil {
					t.Fatal(err)
				}
				r := res.Images[0]
				if run == 1 && !r.Cached {
					t.Fatal("second run scanned again")
				}
				if r.SBOM == nil || r.SBOM.Format != tt.format {
					t.Fatalf("run %d: SBOM = %+v", run, r.SBOM)
				}
				b, err := os.ReadFile(r.SBOM.Path)
				if err != nil {
					t.Fatal(err)
				}
				var doc map[string]any
				if err := json.Unmarshal(b, &doc); err != nil || doc[tt.key] != tt.want {
					t.Fatalf("SBOM %s: %s=%v (%v)", r.SBOM.Path, tt.key, doc[tt.key], err)
				}
				for _, pkg := range []string{"bash", "zlib1g"} {
					if !strings.Contains(string(b), `"`+pkg+`"`) {
						t.Errorf("SBOM does not list %s", pkg)
					}
				}
				sum := sha256.Sum256(b)
				l, err := lock.Read(f.lockPath)
				if err != nil {
					t.Fatal(err)
				}
				img, _ := l.Find("clean")
				if img.Scan.SBOM == nil || img.Scan.SBOM.SHA256 != hex.EncodeToString(sum[:]) || img.Scan.SBOM.Path != r.SBOM.Path {
					t.Fatalf("lock records SBOM %+v, want %s with sha256 %x", img.Scan.SBOM, r.SBOM.Path, sum)
				}
			}
		})
	}
}
