// Command scan benchmarks the Scan stage against its anchor in the same run:
// a loop of plain `trivy image` calls over the same 14 images with the same
// DB, against scan.Run (which also writes every report and the lock file).
//
//	go run ./internal/bench/scan [-rounds 3] [-parallel 0] [-base-libs MiB] [-sbom | -sbom-only]
//
// With -sbom it also times Scan writing every image's CycloneDX SBOM against
// Scan without, in the same rounds (the SBOM's cost).
//
// It needs the Docker Engine and Go (the pinned Trivy is built once if it is
// not on PATH). Images and DB are made locally; nothing is pulled.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/hoistci/hoist/internal/imagefix"
	"github.com/hoistci/hoist/internal/scantest"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/scan"
	"github.com/hoistci/hoist/pkg/trivy"
)

func main() {
	rounds := flag.Int("rounds", 3, "timed rounds of each side (alternating)")
	parallel := flag.Int("parallel", 0, "scans at once for Hoist (0: 2 x cores, the Scan target's default)")
	libMiB := flag.Int("base-libs", 0, "MiB of binary shared libraries added to the shared base layer")
	sbom := flag.Bool("sbom", false, "also time Scan with SBOM output against Scan without")
	sbomOnly := flag.Bool("sbom-only", false, "only time Scan with SBOM output against Scan without (no trivy loop)")
	flag.Parse()
	if err := run(*rounds, *parallel, *libMiB, *sbom || *sbomOnly, *sbomOnly); err != nil {
		fmt.Fprintln(os.Stderr, "bench scan:", err)
		os.Exit(1)
	}
}

func run(rounds, parallel, libMiB int, withSBOM, sbomOnly bool) error {
	ctx := context.Background()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
	e, err := engine.Connect(ctx, engine.Options{})
	if err != nil {
		return err
	}
	defer e.Close()
	cache, _ := os.UserCacheDir()
	topts := trivy.Options{Version: trivy.Pinned, Dir: filepath.Join(cache, "hoist", "tools"), Progress: os.Stderr}
	tool, err := trivy.Ensure(ctx, topts)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "hoist-bench-scan-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	dbDir, err := scantest.WriteDB(ctx, root, filepath.Join(work, "db-src"), []scantest.Advisory{
		{Source: "debian 12", Package: "openssl", ID: "CVE-2099-1001", Fixed: "3.0.15-1~deb12u1", Severity: "HIGH"},
		{Source: "debian 12", Package: "libc6", ID: "CVE-2099-1002", Fixed: "2.36-9+deb12u9", Severity: "MEDIUM"},
		{Source: "debian 12", Package: "zlib1g", ID: "CVE-2099-1003", Fixed: "1:1.2.13.dfsg-1+deb12u1", Severity: "CRITICAL"},
	})
	if err != nil {
		return err
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("needs busybox-static for image content: %w", err)
	}
	busybox, _ := os.ReadFile(bb)

	// The matrix: 7 Python versions x 2 runtimes on one shared base layer
	// (a Debian 12 userland stand-in: busybox and ~2 MiB of library files),
	// each with its own ~1 MiB layer of app files and its dpkg status.
	l := &lock.Lock{Project: "bench", Version: "1.0.0", Created: time.Now()}
	var refs, scanned []string // all made; the 14 scanned
	defer func() {
		for _, ref := range refs {
			e.Remove(context.Background(), ref)
		}
	}()
	tag := fmt.Sprintf("%d", time.Now().UnixNano())
	baseFiles := map[string]string{"/bin/busybox": string(busybox)}
	for i := 0; i < 16; i++ {
		baseFiles[fmt.Sprintf("/usr/lib/python3/stdlib%d.py", i)] = strings.Repeat(fmt.Sprintf("def g%d(x):\n    return x + %d\n", i, i), 5000)
	}
	// Binary libraries, as real bases carry: Trivy's secret scanner skips
	// binary files, so they cost only their export and reading.
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < libMiB; i++ {
		b := make([]byte, 1<<20)
		for j := range b {
			b[j] = byte(rnd.Uint32())
		}
		baseFiles[fmt.Sprintf("/usr/lib/x86_64-linux-gnu/libbench%d.so", i)] = string(b)
	}
	base := "hoist-bench/base:" + tag
	refs = append(refs, base)
	common := map[string]string{"openssl": "3.0.11-1~deb12u1", "libc6": "2.36-9+deb12u4", "zlib1g": "1:1.2.13.dfsg-1", "bash": "5.2.15-2+b2"}
	if _, err := scantest.DebianImage(ctx, e, base, common, baseFiles); err != nil {
		return err
	}
	for _, py := range []string{"3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14"} {
		for _, rt := range []string{"cpu", "gpu"} {
			name := "demo-" + rt + "-py" + py
			ref := "hoist-bench/" + name + ":" + tag
			refs, scanned = append(refs, ref), append(scanned, ref)
			pkgs := map[string]string{"openssl": "3.0.11-1~deb12u1", "libc6": "2.36-9+deb12u4", "zlib1g": "1:1.2.13.dfsg-1", "bash": "5.2.15-2+b2", "python" + py: py + ".2-1"}
			if rt == "gpu" {
				pkgs["openssl"] = "3.0.15-1~deb12u1"
			}
			files := map[string]string{"/var/lib/dpkg/status": scantest.DpkgStatus(pkgs)}
			for i := 0; i < 8; i++ {
				files[fmt.Sprintf("/app/lib/module%d.py", i)] = strings.Repeat(fmt.Sprintf("def f%d(x):\n    return x * %d  # %s\n", i, i, name), 3000)
			}
			if _, err := scantest.AddLayer(ctx, e, base, ref, files); err != nil {
				return err
			}
			img, err := imagefix.Record(ctx, e, name, ref)
			if err != nil {
				return err
			}
			l.Put(img)
		}
	}
	lockPath := filepath.Join(work, "build", "lock.json")
	os.MkdirAll(filepath.Dir(lockPath), 0o755)
	if err := lock.Write(lockPath, l); err != nil {
		return err
	}
	img, _ := e.Inspect(ctx, scanned[0])
	if parallel <= 0 {
		parallel = 2 * runtime.NumCPU()
	}
	fmt.Printf("images: %d, each ~%.1f MiB; %s; %d cores; hoist scans %d at once\n", len(scanned), float64(img.Size)/(1<<20), tool, runtime.NumCPU(), parallel)

	// Anchor: plain trivy image, one after another, the same DB, the same
	// scanners; a fresh cache folder per round (as a CI job starts), or the
	// same one again (warm).
	anchor := func(round int) (time.Duration, error) {
		cacheDir := filepath.Join(work, fmt.Sprintf("anchor-cache-%d", round))
		os.MkdirAll(cacheDir, 0o755)
		if err := os.Symlink(dbDir, filepath.Join(cacheDir, "db")); err != nil && !os.IsExist(err) {
			return 0, err
		}
		start := time.Now()
		for _, ref := range scanned {
			cmd := exec.CommandContext(ctx, tool.Path, "image", "--cache-dir", cacheDir, "--skip-db-update", "--offline-scan", "--skip-java-db-update",
				"--scanners", "vuln,secret", "--quiet", "--image-src", "docker", ref)
			var stderr strings.Builder
			cmd.Stdout, cmd.Stderr = io.Discard, &stderr
			if err := cmd.Run(); err != nil {
				return 0, fmt.Errorf("trivy image %s: %v: %s", ref, err, stderr.String())
			}
		}
		return time.Since(start), nil
	}
	hoistAs := func(round int, sbom, side string) (time.Duration, error) {
		out := filepath.Join(work, "build", fmt.Sprintf("scan%s-%d", side, round))
		start := time.Now()
		_, err := scan.Run(ctx, scan.Options{
			LockPath: lockPath, Engine: e, Trivy: topts,
			Policy:   scan.Policy{Severity: []string{"HIGH", "CRITICAL"}, Scanners: []string{"vuln", "secret"}},
			CacheDir: filepath.Join(out, "trivy-cache"), DBDir: dbDir, OutDir: out, Parallel: parallel,
			SBOM: sbom,
		})
		d := time.Since(start)
		if err != nil && !strings.Contains(err.Error(), scan.ErrBreached.Error()) {
			return 0, err
		}
		return d, nil
	}
	hoist := func(round int) (time.Duration, error) { return hoistAs(round, "", "") }
	// One untimed round each warms the OS file cache and the trivy binary.
	if !sbomOnly {
		if _, err := anchor(-1); err != nil {
			return err
		}
	}
	if _, err := hoist(-1); err != nil {
		return err
	}
	var a, h, aw, hw, ratio, ratioW []float64
	for i := 0; i < rounds && !sbomOnly; i++ {
		da, err := anchor(i)
		if err != nil {
			return err
		}
		dh, err := hoist(i)
		if err != nil {
			return err
		}
		// Again over the same images: the anchor with its warm cache, Hoist
		// with its own (unchanged images are not scanned again).
		daw, err := anchor(i)
		if err != nil {
			return err
		}
		dhw, err := hoist(i)
		if err != nil {
			return err
		}
		a, h, aw, hw = append(a, da.Seconds()), append(h, dh.Seconds()), append(aw, daw.Seconds()), append(hw, dhw.Seconds())
		ratio, ratioW = append(ratio, dh.Seconds()/da.Seconds()), append(ratioW, dhw.Seconds()/daw.Seconds())
		fmt.Printf("round %d: cold: trivy loop %.2fs, hoist scan %.2fs (%.2fx); again: trivy loop %.2fs, hoist scan %.2fs (%.2fx)\n",
			i+1, da.Seconds(), dh.Seconds(), ratio[i], daw.Seconds(), dhw.Seconds(), ratioW[i])
	}
	if withSBOM {
		// Cold both, alternating, fresh folders: the SBOM's whole cost
		// (every package listed in the report, then trivy convert).
		var plain, sb, r []float64
		for i := 0; i < rounds; i++ {
			dp, err := hoistAs(i, "", "-plain")
			if err != nil {
				return err
			}
			ds, err := hoistAs(i, scan.SBOMCycloneDX, "-sbom")
			if err != nil {
				return err
			}
			plain, sb, r = append(plain, dp.Seconds()), append(sb, ds.Seconds()), append(r, ds.Seconds()/dp.Seconds())
			fmt.Printf("round %d: hoist scan %.2fs, with SBOM %.2fs (%.3fx)\n", i+1, dp.Seconds(), ds.Seconds(), r[i])
		}
		fmt.Printf("median: hoist Scan %.2fs, with CycloneDX SBOM %.2fs, ratio %.3fx (median of round ratios %.3fx)\n", median(plain), median(sb), median(sb)/median(plain), median(r))
	}
	if sbomOnly {
		return nil
	}
	fmt.Printf("median cold: trivy image loop %.2fs, hoist Scan (all reports + lock) %.2fs, ratio %.2fx (median of round ratios %.2fx)\n", median(a), median(h), median(h)/median(a), median(ratio))
	fmt.Printf("median again (nothing changed): trivy image loop %.2fs, hoist Scan %.2fs, ratio %.2fx (median of round ratios %.3fx)\n", median(aw), median(hw), median(hw)/median(aw), median(ratioW))
	return nil
}

func median(d []float64) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
