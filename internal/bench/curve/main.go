// Command curve measures how Hoist's per-image costs grow with the number
// of images: the same matrix generator at 14, 56 and 112 images (more
// Python versions and runtimes), each stage run through pkg/pipeline as the
// targets run it. The cost per image must stay flat (total linear).
//
//	go run ./internal/bench/curve [-sizes 14,56,112] [-rounds 3] [-payload-kib 64]
//
// Measured per size (median of the rounds): Images with nothing changed,
// Push with nothing changed, Promote (cold, once), Scan with nothing
// changed, K3dLoad reload into two stand-in k3d nodes (server + agent)
// with nothing changed, and one rewrite of the lock file.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/hoistci/hoist/internal/bench/benchutil"
	"github.com/hoistci/hoist/internal/scantest"
	"github.com/hoistci/hoist/internal/standin"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/cluster"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/localregistry"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/pipeline"
	"github.com/hoistci/hoist/pkg/settings"
)

func main() {
	sizes := flag.String("sizes", "14,56,112", "matrix sizes (even: Python versions × runtimes)")
	rounds := flag.Int("rounds", 3, "measurements of each kind; the median is reported")
	payload := flag.Int("payload-kib", 64, "each image's own layer")
	flag.Parse()
	var ns []int
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 || n%2 != 0 {
			fmt.Fprintf(os.Stderr, "bench curve: -sizes: %q is not an even number of images\n", f)
			os.Exit(2)
		}
		ns = append(ns, n)
	}
	if err := run(context.Background(), ns, *rounds, *payload<<10); err != nil {
		fmt.Fprintln(os.Stderr, "bench curve:", err)
		os.Exit(1)
	}
}

var stages = []string{"Images unchanged", "Push unchanged", "join tags", "shard plan", "Promote", "Scan again", "K3dLoad reload", "lock write"}

func run(ctx context.Context, ns []int, rounds, payload int) error {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
	e, err := engine.Connect(ctx, engine.Options{})
	if err != nil {
		return err
	}
	defer e.Close()
	work, err := os.MkdirTemp("", "hoist-bench-curve-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	db, err := scantest.WriteDB(ctx, root, filepath.Join(work, "db"), []scantest.Advisory{
		{Source: "debian 12", Package: "openssl", ID: "CVE-2099-1001", Fixed: "3.0.15-1~deb12u1", Severity: "HIGH"},
	})
	if err != nil {
		return err
	}
	node := testenv.Unique("hoist-bench/node:")
	if err := standin.BuildImage(ctx, e, node); err != nil {
		return err
	}
	defer e.Remove(context.Background(), node)

	results := map[int]map[string]time.Duration{}
	for _, n := range ns {
		fmt.Fprintf(os.Stderr, "%d images: building, testing, scanning, loading and pushing once...\n", n)
		r, err := measure(ctx, e, root, work, db, node, n, rounds, payload)
		if err != nil {
			return fmt.Errorf("%d images: %w", n, err)
		}
		results[n] = r
	}
	fmt.Printf("\ncost per image (ms), median of %d rounds; %d cores, %s; own layer %d KiB per image\n\n", rounds, runtime.NumCPU(), runtime.Version(), payload>>10)
	fmt.Printf("| stage |")
	for _, n := range ns {
		fmt.Printf(" %d images: total | per image |", n)
	}
	fmt.Printf(" per image, %d vs %d |\n|---|", ns[len(ns)-1], ns[0])
	for range ns {
		fmt.Printf("---|---|")
	}
	fmt.Println("---|")
	for _, s := range stages {
		fmt.Printf("| %s |", s)
		for _, n := range ns {
			d := results[n][s]
			fmt.Printf(" %.3f s | %.2f |", d.Seconds(), per(d, n))
		}
		first, last := ns[0], ns[len(ns)-1]
		fmt.Printf(" %.2fx |\n", per(results[last][s], last)/per(results[first][s], first))
	}
	return nil
}

func per(d time.Duration, n int) float64 { return float64(d.Microseconds()) / 1000 / float64(n) }

func measure(ctx context.Context, e *engine.Engine, root, work, db, node string, n, rounds, payload int) (map[string]time.Duration, error) {
	dir := filepath.Join(work, fmt.Sprintf("repo-%d", n))
	project := fmt.Sprintf("hoistcurve%d-%d", n, time.Now().UnixNano()%1e6)
	reg, err := localregistry.Start(ctx, localregistry.Options{Dir: filepath.Join(work, fmt.Sprintf("registry-%d", n))})
	if err != nil {
		return nil, err
	}
	defer reg.Close()
	clusterName := testenv.Unique("hoist-curve-")
	var nodes []cluster.Node
	defer func() {
		for _, nd := range nodes {
			standin.Remove(context.Background(), e, nd.Name)
		}
	}()
	for _, role := range []string{cluster.RoleServer, cluster.RoleAgent} {
		nd, err := standin.StartNode(ctx, e, node, clusterName, role, "k3d-"+clusterName+"-"+role+"-0")
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, nd)
	}
	extra := fmt.Sprintf("registry: {host: %q, repository: bench}\nscan: {db_dir: %q}\noutside: [%q]\ncluster: {name: %s}\n", reg.Host, db, db, clusterName)
	if _, err := benchutil.MatrixOf(dir, project, benchutil.Shape{Pythons: n / 2, Runtimes: 2, Payload: payload, Extra: extra}); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "VERSION"), []byte("1.0.0\n"), 0o644); err != nil {
		return nil, err
	}
	if err := benchutil.Commit(ctx, dir); err != nil {
		return nil, err
	}
	open := func(version string) (*pipeline.Run, error) {
		set, err := settings.Read([]string{"HOIST_CONFIG=" + filepath.Join(dir, "hoist.yaml"), "HOIST_VERSION=" + version, "HOME=" + os.Getenv("HOME"), "PATH=" + os.Getenv("PATH")})
		if err != nil {
			return nil, err
		}
		return pipeline.Open(ctx, set, io.Discard)
	}
	r, err := open("1.0.0-staging.1")
	if err != nil {
		return nil, err
	}
	defer r.Close()
	defer func() {
		l, _ := lock.Read(r.LockPath)
		if l != nil {
			for _, img := range l.Images {
				e.Remove(context.Background(), img.Ref)
			}
		}
		e.Remove(context.Background(), project+"/busybox:1")
	}()
	// Once, cold: the state every measurement starts from.
	if _, err := r.Images(ctx); err != nil {
		return nil, err
	}
	if err := markTested(r.LockPath); err != nil {
		return nil, err
	}
	for _, step := range []struct {
		name string
		fn   func() error
	}{
		{"Scan", func() error { return r.Scan(ctx) }},
		{"K3dLoad", func() error { return r.K3dLoad(ctx) }},
		{"Push", func() error { _, err := r.Push(ctx); return err }},
	} {
		if err := step.fn(); err != nil {
			return nil, fmt.Errorf("%s: %w", step.name, err)
		}
	}

	got := map[string][]time.Duration{}
	for i := 0; i < rounds; i++ {
		for _, m := range []struct {
			name string
			fn   func() error
		}{
			{"Images unchanged", func() error { _, err := r.Images(ctx); return err }},
			{"Push unchanged", func() error { _, err := r.Push(ctx); return err }},
			// What a CI join does after the shards: read every digest back,
			// hold it to the lock, and write (here: keep) every tag.
			{"join tags", func() error { _, err := r.PushTags(ctx); return err }},
			{"shard plan", func() error { _, err := r.PlanShards(ctx); return err }},
			{"Scan again", func() error { return r.Scan(ctx) }},
			{"K3dLoad reload", func() error { return r.K3dLoad(ctx) }},
			{"lock write", func() error { return lock.Update(r.LockPath, func(*lock.Lock) error { return nil }) }},
		} {
			d, err := benchutil.Time(m.fn)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", m.name, err)
			}
			got[m.name] = append(got[m.name], d)
		}
	}
	// Promote copies once: run it from a run of the release version (the
	// checkout's run lock admits one run at a time).
	r.Close()
	pr, err := open("")
	if err != nil {
		return nil, err
	}
	d, err := benchutil.Time(func() error { _, err := pr.Promote(ctx); return err })
	pr.Close()
	if err != nil {
		return nil, fmt.Errorf("promote: %w", err)
	}
	out := map[string]time.Duration{"Promote": d}
	for k, v := range got {
		out[k] = benchutil.Median(v)
	}
	fmt.Fprintf(os.Stderr, "%d images: %v\n", n, out)
	return out, nil
}

// markTested records a passing test of each image's current build, as the
// Test target would after running it: the curve measures the stages after.
func markTested(path string) error {
	return lock.Update(path, func(l *lock.Lock) error {
		for i := range l.Images {
			l.Images[i].Test = &lock.Test{Passed: true, ImageID: l.Images[i].ImageID, At: time.Now().UTC()}
		}
		return nil
	})
}
