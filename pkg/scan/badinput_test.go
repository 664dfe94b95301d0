package scan_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/config"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/scan"
)

// TestScanBadInput feeds the real scan bad input: each case must fail with
// one clear line, and an image that could not be scanned must be recorded
// as not passed.
func TestScanBadInput(t *testing.T) { testenv.EachEngine(t, testScanBadInput) }

func testScanBadInput(t *testing.T) {
	f := newFixture(t, map[string]map[string]string{"clean": {"openssl": "3.0.15-1~deb12u1"}}, nil)
	corrupt := t.TempDir()
	copyFile(t, filepath.Join(f.dbDir, "metadata.json"), filepath.Join(corrupt, "metadata.json"))
	os.WriteFile(filepath.Join(corrupt, "trivy.db"), []byte(strings.Repeat("not a bolt file ", 512)), 0o644)
	truncated := t.TempDir()
	copyFile(t, filepath.Join(f.dbDir, "metadata.json"), filepath.Join(truncated, "metadata.json"))
	b, _ := os.ReadFile(filepath.Join(f.dbDir, "trivy.db"))
	// Cut into the pages the DB uses (bolt files also carry unused space at
	// the end, which may go without harm): keep the meta and freelist pages.
	os.WriteFile(filepath.Join(truncated, "trivy.db"), b[:3*4096], 0o644)

	tests := []struct {
		name       string
		change     func(o *scan.Options, l *lock.Lock)
		wantErr    string
		wantIs     error // nil: the run stops before scanning
		notScanned bool  // the lock must record the image as not passed
	}{
		{name: "missing DB", change: func(o *scan.Options, _ *lock.Lock) { o.DBDir = filepath.Join(t.TempDir(), "nope") }, wantErr: "does not exist: point scan.db_dir (or HOIST_TRIVY_DB) at a folder"},
		{name: "corrupt DB", change: func(o *scan.Options, _ *lock.Lock) { o.DBDir = corrupt }, wantErr: "trivy.db is corrupt"},
		{name: "truncated DB", change: func(o *scan.Options, _ *lock.Lock) { o.DBDir = truncated }, wantErr: "trivy.db is truncated"},
		{name: "DB download fails", change: func(o *scan.Options, _ *lock.Lock) {
			o.DBDir, o.CacheDir, o.DBRepository = "", t.TempDir(), "127.0.0.1:1/trivy-db"
		}, wantErr: "failed to download vulnerability DB"},
		{name: "image not in the lock file", change: func(o *scan.Options, _ *lock.Lock) { o.Images = []string{"nope"} }, wantErr: `image "nope" is not in the lock file (it has clean)`},
		{name: "bad policy", change: func(o *scan.Options, _ *lock.Lock) { o.Policy.Severity = []string{"SEVERE"} }, wantErr: `severity "SEVERE"`},
		{name: "image gone from the engine", change: func(_ *scan.Options, l *lock.Lock) { l.Images[0].Ref = "hoist-scantest/gone:never" }, wantErr: "from the lock file is not in the engine: run the Images target again", wantIs: scan.ErrNotScanned, notScanned: true},
		{name: "image rebuilt since the lock", change: func(_ *scan.Options, l *lock.Lock) { l.Images[0].ImageID = "sha256:" + strings.Repeat("ab", 32) }, wantErr: "but the lock file recorded abababababab", wantIs: scan.ErrNotScanned, notScanned: true},
		{name: "trivy times out", change: func(o *scan.Options, _ *lock.Lock) { o.Timeout, o.Rescan = time.Millisecond, true }, wantErr: "scanning clean: trivy did not finish within 1ms: raise scan.timeout", wantIs: scan.ErrNotScanned, notScanned: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := lock.Read(f.lockPath)
			if err != nil {
				t.Fatal(err)
			}
			orig := *l
			orig.Images = append([]lock.Image(nil), l.Images...)
			t.Cleanup(func() { lock.Write(f.lockPath, &orig) })
			o := f.options(t, basePolicy())
			tt.change(&o, l)
			if err := lock.Write(f.lockPath, l); err != nil {
				t.Fatal(err)
			}
			_, err = scan.Run(t.Context(), o)
			if err == nil {
				t.Fatal("Run succeeded on bad input")
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q, want it to contain %q", err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Fatalf("error %v is not %v", err, tt.wantIs)
			}
			lines := strings.Split(err.Error(), "\n")
			if tt.wantIs == nil && len(lines) != 1 {
				t.Fatalf("error is %d lines, want one: %q", len(lines), err)
			}
			if tt.wantIs != nil && len(lines) != 2 {
				t.Fatalf("error is %d lines, want a heading and one line for the image: %q", len(lines), err)
			}
			after, err := lock.Read(f.lockPath)
			if err != nil {
				t.Fatal(err)
			}
			s := after.Images[0].Scan
			switch {
			case tt.notScanned && (s == nil || s.Passed || s.Error == ""):
				t.Fatalf("lock scan %+v: an unscanned image must be recorded as not passed, with the error", s)
			case !tt.notScanned && s != nil && s.Passed:
				t.Fatalf("lock scan %+v: a run that stopped must not record a pass", s)
			}
		})
	}
}

// TestPolicyFromConfig reads the policy from a real hoist.yaml; a bad entry
// is one line naming the file and line.
func TestPolicyFromConfig(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644)
	head := "project: demo\nimages:\n  - name: app\n    dockerfile: Dockerfile\n"
	tests := []struct {
		name    string
		scan    string
		want    func(p scan.Policy) bool
		wantErr string
	}{
		{name: "defaults", scan: "", want: func(p scan.Policy) bool {
			return strings.Join(p.Severity, ",") == "HIGH,CRITICAL" && strings.Join(p.Scanners, ",") == "vuln,secret" && !p.IgnoreUnfixed
		}},
		{name: "full", scan: "scan:\n  severity: [CRITICAL]\n  ignore_unfixed: true\n  ignore:\n    - id: CVE-2099-1\n      package: openssl\n      reason: not reachable\n      expires: 2027-01-31\n",
			want: func(p scan.Policy) bool {
				return len(p.Ignore) == 1 && p.Ignore[0].Where == "hoist.yaml:9" && p.Ignore[0].Expires.Equal(time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC)) && p.IgnoreUnfixed
			}},
		{name: "bad severity", scan: "scan:\n  severity: [SEVERE]\n", wantErr: `hoist.yaml:5: scan severity "SEVERE"`},
		{name: "bad date", scan: "scan:\n  ignore:\n    - id: CVE-1\n      reason: r\n      expires: next week\n", wantErr: `hoist.yaml:7: scan ignore CVE-1: expires "next week" is not a date`},
		{name: "no expiry", scan: "scan:\n  ignore:\n    - id: CVE-1\n      reason: r\n", wantErr: "hoist.yaml:7: scan ignore CVE-1 has no expiry: add expires: YYYY-MM-DD"},
		{name: "no reason", scan: "scan:\n  ignore:\n    - id: CVE-1\n", wantErr: "hoist.yaml:7: a scan ignore entry needs an id and a reason"},
		{name: "bad scanner", scan: "scan:\n  scanners: [vulns]\n", wantErr: `hoist.yaml:5: scan scanner "vulns"`},
		{name: "scanner the gate cannot read", scan: "scan:\n  scanners: [vuln, misconfig]\n", wantErr: `hoist.yaml:5: scan scanner "misconfig": use vuln and/or secret`},
		{name: "unknown key", scan: "scan:\n  severities: [HIGH]\n", wantErr: `hoist.yaml:6: unknown key "severities"`},
		{name: "not yaml", scan: "scan: [\n", wantErr: "hoist.yaml:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse("hoist.yaml", dir, []byte(head+tt.scan))
			var p scan.Policy
			if err == nil {
				p, err = scan.PolicyFrom(c)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %v, want one line containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !tt.want(p) {
				t.Fatalf("policy %+v, %v", p, err)
			}
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
