package scan_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/scan"
	"github.com/hoistci/hoist/pkg/trivy"
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
				if run == 0 {
					sameAsTrivyConvert(t, o, r.Reports[0], tt.format, b)
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

// sameAsTrivyConvert: the SBOM Scan wrote (through its Trivy workers) is
// what the trivy binary's own `trivy convert`
// writes from the same report, but for what differs between any two runs
// of it (random UUIDs, the time of writing).
func sameAsTrivyConvert(t *testing.T, o scan.Options, report, format string, got []byte) {
	t.Helper()
	tool, err := trivy.Ensure(t.Context(), o.Trivy)
	if err != nil {
		t.Fatal(err)
	}
	if tool.Path != trivy.BinaryPath(o.Trivy.Dir, tool.Version) {
		t.Fatalf("trivy came from %s, not the tools folder: the workers are not used", tool.Path)
	}
	if _, err := os.Stat(trivy.WorkerPath(o.Trivy.Dir, tool.Version)); err != nil {
		t.Fatalf("Scan built no worker: %v", err)
	}
	out := filepath.Join(t.TempDir(), "want.json")
	cmd := exec.Command(tool.Path, "convert", "--format", format, "--output", out, "--quiet", report)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("trivy convert: %v: %s", err, b)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := normalSBOM(got), normalSBOM(want); !bytes.Equal(g, w) {
		t.Fatalf("the SBOM differs from trivy convert's:\n got %s\nwant %s", g, w)
	}
}

var (
	uuidRe = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	timeRe = regexp.MustCompile(`"(timestamp|created|annotationDate)": ?"[^"]*"`)
)

// normalSBOM blanks the UUIDs and times, and orders every list (Trivy
// sorts some lists by their random UUIDs).
func normalSBOM(b []byte) []byte {
	b = timeRe.ReplaceAll(uuidRe.ReplaceAll(b, []byte("uuid")), []byte(`"$1":""`))
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		return b
	}
	out, _ := json.MarshalIndent(sortLists(doc), "", " ")
	return out
}

func sortLists(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = sortLists(x)
		}
	case []any:
		keys := make([]string, len(v))
		for i, x := range v {
			v[i] = sortLists(x)
			k, _ := json.Marshal(v[i])
			keys[i] = string(k)
		}
		sort.Sort(byKey{v, keys})
	}
	return v
}

type byKey struct {
	v    []any
	keys []string
}

func (b byKey) Len() int           { return len(b.v) }
func (b byKey) Less(i, j int) bool { return b.keys[i] < b.keys[j] }
func (b byKey) Swap(i, j int) {
	b.v[i], b.v[j] = b.v[j], b.v[i]
	b.keys[i], b.keys[j] = b.keys[j], b.keys[i]
}
