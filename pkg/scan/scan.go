// Package scan is the vulnerability gate: it scans every image in the lock
// file with a pinned Trivy, applies the policy from hoist.yaml, records the
// findings in the lock file and writes reports people and GitHub can read
// (a terminal table, Trivy's JSON, SARIF and Markdown), one set per image.
//
// One `trivy server` on the loopback interface holds the vulnerability DB for
// the whole run and the images are scanned by Trivy clients at once (bounded).
// A scan that could not run never counts as a pass.
package scan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/trivy"
)

// ErrBreached means at least one image breaches the policy.
var ErrBreached = errors.New("scan policy breached")

// ErrNotScanned means at least one image could not be scanned; such an
// image never counts as passing.
var ErrNotScanned = errors.New("images could not be scanned")

// Engine is what a scan needs of the Docker Engine: finding images and
// exporting them (*engine.Engine is one).
type Engine interface {
	Inspect(ctx context.Context, ref string) (engine.Image, error)
	Save(ctx context.Context, refs ...string) (io.ReadCloser, error)
}

// Options configure Run.
type Options struct {
	// LockPath is the lock file (build/hoist/lock.json).
	LockPath string
	// Images limits the scan to these image names; empty means all.
	Images []string
	Policy Policy
	// Engine finds and exports the images.
	Engine Engine
	// Trivy says which Trivy to use and where to build it (see trivy.Ensure).
	// Its Progress defaults to Out.
	Trivy trivy.Options
	// CacheDir is Trivy's cache folder; an online DB is downloaded into
	// CacheDir/db. Required. With DBDir set, OutDir/trivy-cache is used
	// instead, linking its db/ to DBDir, so a downloaded DB is never mixed
	// with an offline one.
	CacheDir string
	// DBDir is an offline DB folder (trivy.db and metadata.json). Set, Trivy
	// never downloads anything.
	DBDir string
	// DBRepository is the OCI repository the DB is downloaded from when
	// DBDir is empty (default: Trivy's own).
	DBRepository string
	// OutDir receives the reports, one set per image (e.g. build/hoist/scan).
	OutDir string
	// Parallel bounds the scans running at once (default: the core count).
	Parallel int
	// Timeout bounds one image's scan (default 10 minutes).
	Timeout time.Duration
	// Out receives the terminal table and progress; nil discards.
	Out io.Writer
	// StepSummary, when set, is a file the Markdown summary is appended to
	// (GitHub's $GITHUB_STEP_SUMMARY).
	StepSummary string
	// Now is the clock for ignore expiry (default time.Now).
	Now func() time.Time
	// ShareLayout, when set, is handed the OCI image layout folder of the
	// images this scan exported (configs and uncompressed layers, each
	// blob named by its digest) once it is written; the scan keeps the
	// folder until the returned channel is closed or ctx ends. A push
	// staging its blobs beside the scan reads them there rather than
	// exporting the same images from the engine again.
	ShareLayout func(dir string) <-chan struct{}
	// Rescan scans every image even when an earlier scan of the same image
	// with the same Trivy, scanners and DB could be reused.
	Rescan bool
	// SBOM, when set (SBOMCycloneDX or SBOMSPDX), also writes each image's
	// SBOM in that format beside its reports, from the same Trivy run: the
	// scan lists every package (--list-all-pkgs) and `trivy convert` turns
	// its JSON report into the SBOM, with no second scan and no second
	// export of the image.
	SBOM string
}

// SBOM formats Options.SBOM takes.
const (
	SBOMCycloneDX = "cyclonedx"
	SBOMSPDX      = "spdx-json"
)

// SBOMFile is an image's SBOM as written.
type SBOMFile struct {
	Path   string
	Format string
	SHA256 string // of the file
}

// ImageResult is the outcome for one image.
type ImageResult struct {
	Name    string
	Ref     string
	ImageID string
	// ConfigDigest is the image's identity on either store, and what Trivy
	// names the image by; scan results are cached under it.
	ConfigDigest string
	OS           string // e.g. "debian 12.2", empty when none was detected
	Findings     []Finding
	Reports      []string
	SBOM         *SBOMFile // with Options.SBOM set
	Cached       bool      // the report of an earlier scan with the same Trivy, scanners and DB was reused
	Err          error     // the scan could not run
	Duration     time.Duration
	// Image and Platform are set on the scan of one platform's image of an
	// image with platforms; Name is then IMAGE-OS-ARCH[-VARIANT], which
	// names its reports.
	Image    string
	Platform string
}

// Passed reports whether the image was scanned and nothing blocks.
func (r ImageResult) Passed() bool { return r.Err == nil && r.count(Blocking) == 0 }

func (r ImageResult) count(v Verdict) int {
	n := 0
	for _, f := range r.Findings {
		if f.Verdict == v {
			n++
		}
	}
	return n
}

// Result is the outcome of a run.
type Result struct {
	Images  []ImageResult
	Notices []string // expired or unused ignore entries
	Scanner string   // e.g. trivy 0.58.0
	DB      DBInfo
	Summary string // path of summary.md
}

// Run scans the images of the lock file. It returns ErrBreached (wrapped,
// listing every blocking finding) when the policy is breached and
// ErrNotScanned when an image could not be scanned; the lock file and the
// reports are written in both cases.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if err := o.Policy.Validate(); err != nil {
		return nil, err
	}
	l, err := lock.Read(o.LockPath)
	if err != nil {
		return nil, err
	}
	images, err := selectImages(l, o.Images)
	if err != nil {
		return nil, err
	}
	// Every platform's image of an image with platforms is scanned.
	images, owners := expandPlatforms(images)
	res := &Result{}
	// The DB first: it is cheap to check and a bad one must stop everything.
	offline := o.DBDir != ""
	if res.DB, err = checkDBFirst(&o); err != nil {
		return nil, err
	}
	tool, err := trivy.Ensure(ctx, o.Trivy)
	if err != nil {
		return nil, err
	}
	res.Scanner = tool.String()
	workDir := filepath.Join(o.OutDir, ".trivy-workdir")
	for _, d := range []string{o.OutDir, o.CacheDir, workDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("creating %s: %w", d, err)
		}
	}
	var srv *server
	defer func() {
		if srv != nil {
			srv.stop()
		}
	}()
	start := func() error {
		if err := waitDBFree(ctx, filepath.Join(o.CacheDir, "db", "trivy.db"), o.Out); err != nil {
			return err
		}
		s, err := startServer(ctx, tool.Path, o.CacheDir, workDir, offline, o.DBRepository)
		srv = s
		switch {
		case err != nil && offline:
			return fmt.Errorf("starting trivy with the offline DB %s: %w", o.DBDir, err)
		case err != nil:
			return fmt.Errorf("%w: Trivy could not get its vulnerability DB; where the network is closed set scan.db_dir (or HOIST_TRIVY_DB) to an offline DB folder", err)
		}
		return nil
	}
	if !offline {
		// Online, the server downloads or refreshes the DB before it answers,
		// so the DB is known (and cached results keyed on it) only then.
		if err := start(); err != nil {
			return nil, err
		}
		if res.DB, err = CheckDB(filepath.Join(o.CacheDir, "db")); err != nil {
			return nil, err
		}
	}
	cache := resultCache{dir: filepath.Join(o.CacheDir, "hoist-results"), off: o.Rescan}
	cache.key, err = cacheKey(tool.Version, o.Policy.Scanners, offline, o.SBOM != "", o.CacheDir)
	if err != nil {
		return nil, err
	}
	cache.prune(time.Now())

	// Each image must still be what the lock file recorded; an image already
	// scanned with this Trivy, these scanners and this exact DB is not
	// scanned again (its report is reused; the policy is applied afresh).
	res.Images = make([]ImageResult, len(images))
	var todo, cached []int
	for i, img := range images {
		r := &res.Images[i]
		*r = ImageResult{Name: img.Name, Ref: img.Ref, ImageID: img.ImageID, ConfigDigest: img.ConfigDigest}
		if r.Err = checkImage(ctx, o.Engine, img); r.Err != nil {
			continue
		}
		if cache.load(r, filepath.Join(o.OutDir, img.Name+".trivy.json")) {
			cached = append(cached, i)
			continue
		}
		todo = append(todo, i)
	}
	plan := fmt.Sprintf("scanning %d, %d at once", len(todo), min(o.Parallel, len(todo)))
	if len(todo) == 0 {
		plan = "nothing to scan"
	}
	if n := len(images) - len(todo) - countErr(res.Images); n > 0 {
		plan += fmt.Sprintf("; %d unchanged since their last scan", n)
	}
	fmt.Fprintf(o.Out, "scan: %d image(s) with %s, %s: %s\n", len(images), res.Scanner, res.DB, plan)
	// Export the images to scan (one engine export for all) while the
	// server starts.
	layout := ""
	if len(todo) > 0 {
		var serr error
		started := make(chan struct{})
		go func() {
			defer close(started)
			if srv == nil {
				serr = start()
			}
		}()
		layout, err = os.MkdirTemp(o.OutDir, ".layout-")
		if err == nil {
			defer os.RemoveAll(layout)
			toSave := make([]lock.Image, len(todo))
			for k, i := range todo {
				toSave[k] = images[i]
			}
			err = saveLayout(ctx, o.Engine, toSave, layout)
			if err == nil && o.ShareLayout != nil {
				used := o.ShareLayout(layout)
				// Runs before the folder's removal (deferred first).
				defer func() {
					select {
					case <-used:
					case <-ctx.Done():
					}
				}()
			}
		}
		<-started
		if serr != nil {
			return nil, serr
		}
		if err != nil {
			for _, i := range todo {
				res.Images[i].Err = fmt.Errorf("exporting %s from the engine: %w", images[i].Name, err)
			}
			todo = nil
		}
	}
	// Each image's outcome is its own: one failing scan stops no other,
	// so the group only bounds how many run at once.
	pool := newWorkers(o, tool, workDir)
	defer pool.close()
	if len(todo) > 0 || (o.SBOM != "" && len(cached) > 0) {
		// Built once per machine, under the run's context: a build of a
		// minute or more is not one scan's (its timeout would end it).
		pool.prepare(ctx)
	}
	var g, sboms errgroup.Group
	g.SetLimit(o.Parallel)
	sboms.SetLimit(o.Parallel)
	for _, i := range todo {
		if ctx.Err() != nil {
			res.Images[i].Err = ctx.Err()
			continue
		}
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				res.Images[i].Err = err
				return nil
			}
			res.Images[i] = scanImage(ctx, o, srv, tool, pool, images[i], layout, offline, workDir)
			cache.store(res.Images[i])
			// The SBOM needs no scan slot: the next scan starts meanwhile.
			sboms.Go(func() error {
				writeSBOM(ctx, o, tool, pool, &res.Images[i], workDir)
				return nil
			})
			return nil
		})
	}
	// A reused report lists the packages too (the cache key says so).
	for _, i := range cached {
		sboms.Go(func() error {
			writeSBOM(ctx, o, tool, pool, &res.Images[i], workDir)
			return nil
		})
	}
	_ = g.Wait()     // no job returns an error: each is recorded in res.Images
	_ = sboms.Wait() // likewise; started only by the jobs above, all done
	pool.close()
	for i := range res.Images {
		res.Images[i].Image, res.Images[i].Platform = owners[i].image, owners[i].platform
	}
	if srv != nil {
		srv.stop() // before writing: the run is over for Trivy
	}

	now := o.Now()
	judge(res, o.Policy, now, len(o.Images) > 0)
	if err := writeReports(o, res, now); err != nil {
		return res, err
	}
	return res, verdict(res)
}

// writeReports writes each image's reports, the summary (also to the GitHub
// step summary), the lock file and the terminal table, in image order.
func writeReports(o Options, res *Result, now time.Time) error {
	for i := range res.Images {
		r := &res.Images[i]
		if r.Err != nil {
			continue
		}
		if err := writeImageReports(o.OutDir, r, res); err != nil {
			r.Err = err
		}
	}
	res.Summary = filepath.Join(o.OutDir, "summary.md")
	md := Markdown(res)
	if err := lock.WriteFileAtomic(res.Summary, []byte(md)); err != nil {
		return err
	}
	if o.StepSummary != "" {
		if err := appendFile(o.StepSummary, md); err != nil {
			return fmt.Errorf("appending to the GitHub step summary %s: %w", o.StepSummary, err)
		}
	}
	if err := record(o.LockPath, res, now); err != nil {
		return err
	}
	WriteTable(o.Out, res)
	return nil
}

func (o *Options) defaults() error {
	if o.LockPath == "" || o.OutDir == "" || o.CacheDir == "" {
		return errors.New("scan: LockPath, OutDir and CacheDir are required")
	}
	if o.Engine == nil {
		return errors.New("scan: no engine given")
	}
	if o.Parallel <= 0 {
		o.Parallel = runtime.NumCPU()
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Trivy.Progress == nil {
		o.Trivy.Progress = o.Out
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	switch o.SBOM {
	case "", SBOMCycloneDX, SBOMSPDX:
	default:
		return fmt.Errorf("scan: SBOM format %q: use %s or %s", o.SBOM, SBOMCycloneDX, SBOMSPDX)
	}
	return nil
}

// selectImages picks the images to scan; a name not in the lock file is an error.
func selectImages(l *lock.Lock, names []string) ([]lock.Image, error) {
	if len(l.Images) == 0 {
		return nil, errors.New("the lock file lists no images: run the Images target first")
	}
	if len(names) == 0 {
		return l.Images, nil
	}
	var out []lock.Image
	for _, n := range names {
		img, ok := l.Find(n)
		if !ok {
			known := make([]string, len(l.Images))
			for i, im := range l.Images {
				known[i] = im.Name
			}
			return nil, fmt.Errorf("image %q is not in the lock file (it has %s): fix the name, or run the Images target to build it", n, strings.Join(known, ", "))
		}
		out = append(out, *img)
	}
	return out, nil
}

// checkImage makes sure the engine still has the image the lock file
// recorded under its reference: Hoist scans exactly what was built.
func checkImage(ctx context.Context, e Engine, img lock.Image) error {
	got, err := e.Inspect(ctx, img.Ref)
	if errors.Is(err, engine.ErrNotFound) {
		return fmt.Errorf("%s (%s) from the lock file is not in the engine: run the Images target again", img.Name, img.Ref)
	}
	if err != nil {
		return err
	}
	if img.ImageID != "" && got.ID != img.ImageID {
		return fmt.Errorf("%s: the engine's %s is %s but the lock file recorded %s: run the Images target again", img.Name, img.Ref, short(got.ID), short(img.ImageID))
	}
	return nil
}

func countErr(rs []ImageResult) int {
	n := 0
	for _, r := range rs {
		if r.Err != nil {
			n++
		}
	}
	return n
}

// scanImage runs one Trivy client for img and reads its JSON report.
func scanImage(ctx context.Context, o Options, srv *server, tool trivy.Tool, pool *workers, img lock.Image, layout string, offline bool, workDir string) ImageResult {
	start := time.Now()
	r := ImageResult{Name: img.Name, Ref: img.Ref, ImageID: img.ImageID, ConfigDigest: img.ConfigDigest}
	fail := func(err error) ImageResult {
		r.Err = err
		r.Duration = time.Since(start)
		return r
	}
	jsonPath := filepath.Join(o.OutDir, img.Name+".trivy.json")
	os.Remove(jsonPath) // a stale report must never be read as this scan's
	args := []string{"image", "--server", srv.addr,
		"--scanners", strings.Join(o.Policy.Scanners, ","),
		"--format", "json", "--output", jsonPath,
		"--cache-dir", o.CacheDir,
		"--timeout", o.Timeout.String(),
		"--quiet", "--no-progress",
	}
	if offline {
		args = append(args, "--offline-scan", "--skip-java-db-update")
	}
	if o.SBOM != "" {
		args = append(args, "--list-all-pkgs")
	}
	args = append(args, "--input", layout+"@"+img.Name)
	// Trivy's own --timeout first; this one in case it is not kept.
	limit := o.Timeout + 30*time.Second
	timedOut, reason, err := runTrivy(ctx, pool, tool.Path, workDir, limit, args, srv.token, clientGC)
	detail := ""
	switch {
	case err != nil && reason != "":
		detail = fmt.Sprintf("(%v): %s", err, reason)
	case err != nil:
		detail = ": " + err.Error()
	}
	r.Duration = time.Since(start)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return fail(fmt.Errorf("scanning %s: %w", img.Name, ctx.Err()))
		case timedOut || strings.Contains(detail, "context deadline exceeded"):
			return fail(fmt.Errorf("scanning %s: trivy did not finish within %s: raise scan.timeout in hoist.yaml", img.Name, o.Timeout))
		}
		if serr := srv.failed(); serr != nil {
			return fail(fmt.Errorf("scanning %s: %w", img.Name, serr))
		}
		return fail(fmt.Errorf("scanning %s: trivy failed%s", img.Name, detail))
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		return fail(fmt.Errorf("scanning %s: trivy wrote no report: %s", img.Name, reason))
	}
	rep, err := ParseReport(b)
	if err != nil {
		return fail(fmt.Errorf("scanning %s: %w", img.Name, err))
	}
	// Trivy names an image by its config digest, which is the image ID on
	// the classic store only.
	if img.ConfigDigest != "" && rep.Metadata.ImageID != img.ConfigDigest {
		return fail(fmt.Errorf("scanning %s: trivy scanned config %s, not the config %s the lock file recorded: run the Images target again and scan nothing else meanwhile", img.Name, short(rep.Metadata.ImageID), short(img.ConfigDigest)))
	}
	fillResult(&r, rep)
	r.Reports = []string{jsonPath}
	return r
}

func fillResult(r *ImageResult, rep *Report) {
	if rep.Metadata.OS != nil {
		r.OS = strings.TrimSpace(rep.Metadata.OS.Family + " " + rep.Metadata.OS.Name)
	}
	r.Findings = rep.Findings()
}

func short(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		id = id[:12]
	}
	if id == "" {
		return "(none)"
	}
	return id
}

// record writes each image's scan into the lock file.
func record(path string, res *Result, now time.Time) error {
	return lock.Update(path, func(l *lock.Lock) error {
		summed := map[string]*lock.Image{}
		for _, r := range res.Images {
			name := r.Name
			if r.Platform != "" {
				name = r.Image
			}
			img, ok := l.Find(name)
			if !ok {
				continue // removed from the lock meanwhile: nothing to record on
			}
			s := &lock.Scan{Passed: r.Passed(), At: now.UTC(), ImageID: r.ImageID, Scanner: res.Scanner, Reports: r.Reports, DB: res.DB.String()}
			if r.SBOM != nil {
				s.SBOM = &lock.SBOM{Path: r.SBOM.Path, Format: r.SBOM.Format, SHA256: r.SBOM.SHA256}
			}
			if r.Err != nil {
				s.Error = r.Err.Error()
			}
			for _, f := range r.Findings {
				if f.Verdict == Below {
					continue
				}
				s.Findings = append(s.Findings, lock.Finding{
					ID: f.ID, Package: f.Package, Installed: f.Installed, Fixed: f.Fixed,
					Severity: f.Severity, Blocking: f.Verdict == Blocking, Ignored: ignoredReason(f),
				})
			}
			if r.Platform != "" {
				if p, ok := img.FindPlatform(r.Platform); ok {
					p.Scan = s
					summed[name] = img
				}
				continue
			}
			img.Scan = s
		}
		for _, img := range summed {
			img.Scan = img.PlatformsScan()
		}
		return nil
	})
}

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, werr := io.WriteString(f, s)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	return werr
}
