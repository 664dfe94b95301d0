// Command pipeline runs the whole pipeline against what it replaces: a
// Makefile doing what the matrix write-up does (a `docker build` loop, a
// `docker run` test loop, a `trivy image` loop, a `docker push` loop and
// `crane copy` to latest) and Hoist's release local line (reserve, Images,
// Test, Scan, DigestGate, Gate, Push, Record, Promote), on the same
// 14-entry matrix, cold (no build cache) and each into a fresh loopback
// registry, taking turns going first.
//
//	go run ./internal/bench/pipeline [-rounds 3] [-payload-kib 4096]
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hoistci/hoist/internal/bench/benchutil"
	"github.com/hoistci/hoist/internal/scantest"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/localregistry"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/pipeline"
	"github.com/hoistci/hoist/pkg/settings"
	"github.com/hoistci/hoist/pkg/trivy"
)

func main() {
	rounds := flag.Int("rounds", 3, "measurements of each side; the median is reported")
	payload := flag.Int("payload-kib", 4096, "each image's own layer")
	flag.BoolVar(&verbose, "v", false, "print how long each of Hoist's steps took")
	flag.StringVar(&only, "only", "", "run one side only (hoist or make), for profiling; no ratio is reported")
	flag.StringVar(&extraYAML, "yaml", "", "lines added to Hoist's hoist.yaml, e.g. 'attest: {sbom: none}' to measure without SBOMs")
	flag.BoolVar(&mono, "mono", false, "with -v, print all of Hoist's lines, each stamped with CLOCK_MONOTONIC seconds, to line up with `perf record -k mono`")
	flag.Parse()
	if err := run(context.Background(), *rounds, *payload<<10); err != nil {
		fmt.Fprintln(os.Stderr, "bench pipeline:", err)
		os.Exit(1)
	}
}

var (
	verbose bool
	only    string
	mono    bool
	// extraYAML is the -yaml flag.
	extraYAML string
)

type bench struct {
	e       *engine.Engine
	work    string
	db      string
	trivy   string
	crane   string
	docker  string // DOCKER_CONFIG with the pinned buildx as a CLI plugin
	payload int
	refs    []string // engine references to remove at the end
}

func run(ctx context.Context, rounds, payload int) error {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
	e, err := engine.Connect(ctx, engine.Options{})
	if err != nil {
		return err
	}
	defer e.Close()
	work, err := os.MkdirTemp("", "hoist-bench-pipeline-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	b := &bench{e: e, work: work, payload: payload}
	defer func() {
		for _, ref := range b.refs {
			e.Remove(context.Background(), ref)
		}
	}()
	cache, _ := os.UserCacheDir()
	tool, err := trivy.Ensure(ctx, trivy.Options{Version: trivy.Pinned, Dir: filepath.Join(cache, "hoist", "tools"), Progress: os.Stderr})
	if err != nil {
		return err
	}
	b.trivy = tool.Path
	if b.db, err = scantest.WriteDB(ctx, root, filepath.Join(work, "db"), []scantest.Advisory{
		{Source: "debian 12", Package: "openssl", ID: "CVE-2099-1001", Fixed: "3.0.15-1~deb12u1", Severity: "HIGH"},
	}); err != nil {
		return err
	}
	if b.crane, err = benchutil.Crane(ctx, work); err != nil {
		return err
	}
	// docker build with BuildKit, as Docker 23 and later do by default,
	// needs buildx beside this machine's older CLI.
	if b.docker, err = benchutil.Buildx(ctx, work); err != nil {
		return err
	}
	var mk, hoist []time.Duration
	for r := 0; r < rounds; r++ {
		sides := []func() (time.Duration, error){
			func() (time.Duration, error) { return b.makefile(ctx, r) },
			func() (time.Duration, error) { return b.hoist(ctx, r) },
		}
		var got [2]time.Duration
		for i := 0; i < 2; i++ {
			side := (i + r) % 2 // take turns going first
			if only != "" && only != [2]string{"make", "hoist"}[side] {
				continue
			}
			d, err := sides[side]()
			if err != nil {
				return err
			}
			got[side] = d
		}
		if only != "" {
			fmt.Printf("round %d: %s %.2f s\n", r+1, only, (got[0] + got[1]).Seconds())
			continue
		}
		mk, hoist = append(mk, got[0]), append(hoist, got[1])
		fmt.Printf("round %d: Makefile %.2f s, Hoist release (local line) %.2f s (%.2fx)\n", r+1, got[0].Seconds(), got[1].Seconds(), got[1].Seconds()/got[0].Seconds())
	}
	if only != "" {
		return nil
	}
	m, h := benchutil.Median(mk), benchutil.Median(hoist)
	fmt.Printf("\n14 images (%d KiB own layer each), cold, %d rounds, medians; %d cores\n", payload>>10, rounds, runtime.NumCPU())
	fmt.Printf("| what | Makefile | Hoist | ratio | target |\n|---|---|---|---|---|\n")
	fmt.Printf("| build, test, scan, push, promote | %.2f s | %.2f s | %.2fx | <= 0.3x |\n", m.Seconds(), h.Seconds(), h.Seconds()/m.Seconds())
	return nil
}

// repo writes the 14-entry matrix for one side of one round.
func (b *bench) repo(name string, extra string) (string, string, error) {
	dir := filepath.Join(b.work, name)
	project := fmt.Sprintf("hoistpipe%s%d", strings.ReplaceAll(name, "-", ""), time.Now().UnixNano()%1e6)
	if _, err := benchutil.MatrixOf(dir, project, benchutil.Shape{Pythons: 7, Runtimes: 2, Payload: b.payload, Extra: extra}); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "VERSION"), []byte("1.0.0\n"), 0o644); err != nil {
		return "", "", err
	}
	return dir, project, nil
}

// makefile times `make all` over the matrix: the write-up's loops.
func (b *bench) makefile(ctx context.Context, round int) (time.Duration, error) {
	dir, project, err := b.repo(fmt.Sprintf("make-%d", round), "")
	if err != nil {
		return 0, err
	}
	reg, err := localregistry.Start(ctx, localregistry.Options{Dir: filepath.Join(b.work, fmt.Sprintf("make-registry-%d", round))})
	if err != nil {
		return 0, err
	}
	defer reg.Close()
	// The base is there before the clock starts, as a pulled base would be.
	base := project + "/busybox:1"
	if err := importBusybox(ctx, base); err != nil {
		return 0, err
	}
	b.refs = append(b.refs, base)
	var build, test, scan, push, promote strings.Builder
	for _, py := range []string{"3.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13"} {
		for _, rt := range []string{"cpu", "cuda"} {
			name := fmt.Sprintf("bench-%s-py%s", rt, py)
			ref := project + "/" + name + ":1.0.0"
			remote := reg.Host + "/bench/" + name
			df := filepath.Join(dir, "Dockerfile."+name)
			body := strings.NewReplacer("{{.base}}", base, "{{.runtime}}", rt, "{{.python}}", py, "{{.payload}}", fmt.Sprint(b.payload)).Replace(benchutil.MatrixTemplate)
			if err := os.WriteFile(df, []byte(body), 0o644); err != nil {
				return 0, err
			}
			b.refs = append(b.refs, ref, remote+":1.0.0")
			fmt.Fprintf(&build, "\tdocker build -q --no-cache --network none --build-arg PYTHON_VERSION=%s -t %s -f %s ctx\n", py, ref, df)
			fmt.Fprintf(&test, "\tdocker run --rm --network none %s\n", ref)
			fmt.Fprintf(&scan, "\t%s image -q --cache-dir %s --skip-db-update --offline-scan --skip-java-db-update --scanners vuln,secret --image-src docker --exit-code 0 %s > /dev/null\n",
				b.trivy, filepath.Join(dir, "trivy-cache"), ref)
			fmt.Fprintf(&push, "\tdocker tag %s %s:1.0.0\n\tdocker push -q %s:1.0.0 > /dev/null\n", ref, remote, remote)
			fmt.Fprintf(&promote, "\t%s copy --insecure %s:1.0.0 %s:latest\n", b.crane, remote, remote)
		}
	}
	mk := "all: build test scan push promote\nbuild:\n" + build.String() + "test: build\n" + test.String() + "scan: test\n" + scan.String() +
		"push: scan\n" + push.String() + "promote: push\n" + promote.String()
	if err := os.WriteFile(filepath.Join(dir, "Makefile"), []byte(mk), 0o644); err != nil {
		return 0, err
	}
	// The DB where Trivy looks for it, as the write-up's job downloads it.
	if err := copyDir(b.db, filepath.Join(dir, "trivy-cache", "db")); err != nil {
		return 0, err
	}
	return benchutil.Time(func() error {
		cmd := exec.CommandContext(ctx, "make", "-s", "all")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=1", "DOCKER_CONFIG="+b.docker)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("make: %v\n%s", err, out)
		}
		return nil
	})
}

// hoist times the release local line over the matrix.
func (b *bench) hoist(ctx context.Context, round int) (time.Duration, error) {
	dir, project, err := b.repo(fmt.Sprintf("hoist-%d", round), fmt.Sprintf("scan: {db_dir: %q}\noutside: [%q]\n", b.db, b.db)+extraYAML)
	if err != nil {
		return 0, err
	}
	// On main: the local line runs the staging line and main's promotion.
	if err := benchutil.Commit(ctx, dir); err != nil {
		return 0, err
	}
	b.refs = append(b.refs, project+"/busybox:1")
	set, err := settings.Read([]string{"HOIST_CONFIG=" + filepath.Join(dir, "hoist.yaml"), "HOIST_REBUILD=1",
		"HOME=" + os.Getenv("HOME"), "PATH=" + os.Getenv("PATH"),
		"GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@localhost", "GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@localhost"})
	if err != nil {
		return 0, err
	}
	var r *pipeline.Run
	var out bytes.Buffer
	var mw io.Writer = &out
	if mono {
		mw = monoWriter{&out}
	}
	d, err := benchutil.Time(func() error {
		var err error
		if mono {
			fmt.Fprintln(mw, "bench: the clock starts")
		}
		if r, err = pipeline.Open(ctx, set, mw); err != nil {
			return err
		}
		return r.Release(ctx)
	})
	if r != nil {
		defer r.Close()
		defer r.RegistryStop(context.Background())
	}
	if err != nil {
		return 0, err
	}
	// The same work as the Makefile's, or the figure means nothing: every
	// image built, tested, scanned, pushed and promoted to latest.
	l, err := lock.Read(r.LockPath)
	if err != nil {
		return 0, err
	}
	if len(l.Images) != 14 {
		return 0, fmt.Errorf("the release locked %d images, want 14", len(l.Images))
	}
	for _, img := range l.Images {
		b.refs = append(b.refs, img.Ref)
		latest := false
		for _, p := range img.Pushed {
			latest = latest || strings.HasSuffix(p.Ref, "/"+img.Name+":latest")
		}
		if img.Test == nil || !img.Test.Passed || img.Scan == nil || !latest {
			return 0, fmt.Errorf("%s: tested %v, scanned %v, promoted to latest %v (pushed %+v); the release printed:\n%s", img.Name, img.Test != nil, img.Scan != nil, latest, img.Pushed, out.String())
		}
	}
	if verbose {
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.Contains(l, " done in ") || mono {
				fmt.Println("  hoist " + l)
			}
		}
	}
	return d, nil
}

func importBusybox(ctx context.Context, ref string) error {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("needs busybox-static: %w", err)
	}
	tmp, err := os.MkdirTemp("", "hoist-bench-bb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.MkdirAll(filepath.Join(tmp, "bin"), 0o755); err != nil {
		return err
	}
	if err := exec.Command("cp", bb, filepath.Join(tmp, "bin", "busybox")).Run(); err != nil {
		return err
	}
	for _, a := range []string{"sh", "head", "test"} {
		os.Symlink("busybox", filepath.Join(tmp, "bin", a))
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", "tar -C "+tmp+" -c . | docker import - "+ref)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("importing %s: %v\n%s", ref, err, out)
	}
	return nil
}

func copyDir(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := exec.Command("cp", "-r", src, dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cp -r %s %s: %v\n%s", src, dst, err, out)
	}
	return nil
}

// monoWriter stamps each write (the pipeline writes a line at a time) with
// the monotonic clock perf can record in.
type monoWriter struct{ w *bytes.Buffer }

func (m monoWriter) Write(p []byte) (int, error) {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	fmt.Fprintf(m.w, "%d.%06d ", ts.Sec, ts.Nsec/1000)
	return m.w.Write(p)
}
