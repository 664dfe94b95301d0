package scan

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hoistci/hoist/pkg/trivy"
)

// sbomPath is where an image's SBOM goes, beside its other reports.
func sbomPath(dir, image, format string) string {
	ext := ".cdx.json"
	if format == SBOMSPDX {
		ext = ".spdx.json"
	}
	return filepath.Join(dir, image+".sbom"+ext)
}

// writeSBOM turns the image's Trivy JSON report (which lists every
// package) into its SBOM with Trivy's own `trivy convert`, in one of the
// run's workers when there are some: no scan and no export of the image.
// An SBOM that was asked for and could not be written makes the image's
// scan fail: a pass must never lack the proof it promised.
func writeSBOM(ctx context.Context, o Options, tool trivy.Tool, pool *workers, r *ImageResult, workDir string) {
	if o.SBOM == "" || r.Err != nil || len(r.Reports) == 0 {
		return
	}
	out := sbomPath(o.OutDir, r.Name, o.SBOM)
	os.Remove(out) // a stale SBOM must never be read as this scan's
	tmp := out + ".tmp"
	defer os.Remove(tmp)
	args := []string{"convert", "--format", o.SBOM, "--output", tmp, "--quiet", r.Reports[0]}
	// A conversion run as its own process lives a tenth of a second and
	// holds one report: the collector's work is a quarter of its CPU
	// (measured), so it runs only if the heap ever nears GOMEMLIMIT.
	timedOut, reason, err := runTrivy(ctx, pool, tool.Path, workDir, o.Timeout, args, "", convertGC)
	if err != nil && reason != "" {
		err = fmt.Errorf("%v: %s", err, reason)
	}
	if err != nil {
		if timedOut && ctx.Err() == nil {
			err = fmt.Errorf("not done within %s: raise scan.timeout in hoist.yaml", o.Timeout)
		}
		r.Err = fmt.Errorf("writing the SBOM of %s (trivy convert): %v", r.Name, err)
		return
	}
	b, err := os.ReadFile(tmp)
	if err == nil {
		err = os.Rename(tmp, out)
	}
	if err != nil {
		r.Err = fmt.Errorf("writing the SBOM of %s: %w", r.Name, err)
		return
	}
	sum := sha256.Sum256(b)
	r.SBOM = &SBOMFile{Path: out, Format: o.SBOM, SHA256: hex.EncodeToString(sum[:])}
}

// convertGC turns the collector off for `trivy convert` below 1 GiB. It
// goes first in the environment, so a GOGC or GOMEMLIMIT the caller set
// comes later and wins.
var convertGC = []string{"GOGC=off", "GOMEMLIMIT=1GiB"}

// clientGC lets a scan's heap grow to five times what it holds before the
// collector runs, but not past 768 MiB: a scan of a small image then
// spends a quarter less CPU (measured), and a large one collects about as
// often as by default. The caller's GOGC or GOMEMLIMIT wins, as above.
var clientGC = []string{"GOGC=400", "GOMEMLIMIT=768MiB"}
