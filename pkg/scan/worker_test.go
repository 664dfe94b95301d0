package scan

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoistci/hoist/pkg/trivy"
)

// report is a Trivy JSON report listing two Debian packages, as a scan
// with --list-all-pkgs writes it.
const report = `{
  "SchemaVersion": 2,
  "ArtifactName": "app",
  "ArtifactType": "container_image",
  "Metadata": {"OS": {"Family": "debian", "Name": "12.2"}, "ImageID": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
  "Results": [{
    "Target": "app (debian 12.2)", "Class": "os-pkgs", "Type": "debian",
    "Packages": [
      {"ID": "bash@5.2.15-2+b2", "Name": "bash", "Version": "5.2.15-2+b2", "Identifier": {"PURL": "pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12.2"}},
      {"ID": "zlib1g@1.2.13", "Name": "zlib1g", "Version": "1.2.13", "Identifier": {"PURL": "pkg:deb/debian/zlib1g@1.2.13?arch=amd64&distro=debian-12.2"}}
    ]
  }]
}`

// realTrivy is the pinned Trivy of the tools folder, with a folder holding
// the report (in).
func realTrivy(t *testing.T) (o Options, tool trivy.Tool, dir, in string) {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	o = Options{SBOM: SBOMCycloneDX, Trivy: trivy.Options{Dir: filepath.Join(cache, "hoist", "tools")}, Timeout: time.Minute}
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Minute)
	defer cancel()
	if tool, err = trivy.Ensure(ctx, o.Trivy); err != nil {
		t.Fatal(err)
	}
	if tool.Path != trivy.BinaryPath(o.Trivy.Dir, tool.Version) {
		t.Fatalf("trivy came from %s: these tests need the one built into the tools folder", tool.Path)
	}
	dir = t.TempDir()
	in = filepath.Join(dir, "app.trivy.json")
	if err := os.WriteFile(in, []byte(report), 0o644); err != nil {
		t.Fatal(err)
	}
	return o, tool, dir, in
}

// TestWorkerRunsMany: one worker process writes SBOMs in either format,
// one request after another, refuses a bad request with Trivy's own error
// and goes on with the next.
func TestWorkerRunsMany(t *testing.T) {
	o, tool, dir, in := realTrivy(t)
	o.Parallel = 1
	c := newWorkers(o, tool, dir)
	if c == nil {
		t.Fatal("no workers for a Trivy of the tools folder")
	}
	defer c.close()
	pid := 0
	for i, format := range []string{SBOMCycloneDX, SBOMSPDX, SBOMCycloneDX, "bogus", SBOMSPDX} {
		out := filepath.Join(dir, "out.json")
		os.Remove(out)
		err := c.run(t.Context(), time.Minute, []string{"convert", "--format", format, "--output", out, "--quiet", in})
		if format == "bogus" {
			if err == nil || errors.Is(err, errWorkerGone) || !strings.Contains(err.Error(), "bogus") {
				t.Fatalf("format bogus: err = %v, want Trivy's refusal", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("request %d (%s): %v", i, format, err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil || !strings.Contains(string(b), `"zlib1g"`) {
			t.Fatalf("request %d (%s) wrote %s (%v)", i, format, b, err)
		}
		if len(c.idle) != 1 {
			t.Fatalf("after request %d: %d idle workers, want the one", i, len(c.idle))
		}
		if p := c.idle[0].cmd.Process.Pid; pid == 0 {
			pid = p
		} else if p != pid {
			t.Fatalf("request %d ran in process %d, the first in %d", i, p, pid)
		}
	}
}

// TestWorkerGoneFallsBack: a worker that dies at once, or never answers,
// costs no SBOM: the first is done by `trivy convert` itself (and no
// request goes to a worker again), the second is refused at its deadline in
// one line and that process is ended.
func TestWorkerGoneFallsBack(t *testing.T) {
	o, tool, dir, in := realTrivy(t)
	fake := func(path string) *workers {
		return &workers{ensure: func(context.Context) (trivy.Tool, error) { return trivy.Tool{Path: path}, nil }, dir: dir, note: os.Stderr, slots: make(chan struct{}, 2)}
	}

	t.Run("dies", func(t *testing.T) {
		c := fake("/bin/true")
		defer c.close()
		r := &ImageResult{Name: "app", Reports: []string{in}}
		o := o
		o.OutDir = t.TempDir()
		writeSBOM(t.Context(), o, tool, c, r, dir)
		if r.Err != nil || r.SBOM == nil {
			t.Fatalf("SBOM %+v, err %v", r.SBOM, r.Err)
		}
		if c.failed == nil {
			t.Fatal("after a worker died, workers are still taken for running")
		}
	})

	t.Run("never answers", func(t *testing.T) {
		c := fake("/bin/cat") // reads the request, answers nothing on fd 3
		defer c.close()
		r := &ImageResult{Name: "app", Reports: []string{in}}
		o := o
		o.OutDir, o.Timeout = t.TempDir(), 300*time.Millisecond
		writeSBOM(t.Context(), o, tool, c, r, dir)
		if r.Err == nil || !strings.Contains(r.Err.Error(), "raise scan.timeout") {
			t.Fatalf("err = %v, want the deadline named", r.Err)
		}
		if len(c.idle) != 0 {
			t.Fatal("the worker past its deadline is still kept")
		}
	})
}
