// Command images compares the Images stage with `docker buildx bake` (all
// targets in one BuildKit session: the strongest peer) over the same
// Dockerfiles, in one run on one engine:
//
//	go run ./internal/bench/images [-rounds 3]
//
// Two sets: the 14-entry matrix of benchutil, and the write-ups' three
// kinds of real-world Dockerfile (internal/realworld: a multi-stage Go
// compile, pip install from a loopback index, npm install from a loopback
// tarball). Cold: Images with HOIST_REBUILD semantics (no build cache)
// against `bake --no-cache`. Nothing changed: Images again against bake
// again. buildx is built from the module proxy at the version tools/buildx
// pins and used as a CLI plugin of a private DOCKER_CONFIG.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/hoistci/hoist/internal/bench/benchutil"
	"github.com/hoistci/hoist/internal/realworld"
	"github.com/hoistci/hoist/pkg/config"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/images"
	"github.com/hoistci/hoist/pkg/plan"
)

func main() {
	rounds := flag.Int("rounds", 3, "rounds of each measurement; the median is reported")
	parallel := flag.Int("parallel", 2*runtime.NumCPU(), "Images' concurrent solves")
	only := flag.String("set", "", "measure only this set: matrix or realworld (default both)")
	flag.Parse()
	if err := run(*rounds, *parallel, *only); err != nil {
		fmt.Fprintln(os.Stderr, "bench images:", err)
		os.Exit(1)
	}
}

func run(rounds, parallel int, only string) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "hoist-bench-images-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	dockerConfig, err := benchutil.Buildx(ctx, dir)
	if err != nil {
		return err
	}
	e, err := engine.Connect(ctx, engine.Options{})
	if err != nil {
		return fmt.Errorf("%w (bash scripts/engine-up.sh starts one)", err)
	}
	defer e.Close()
	b, err := e.Builder(ctx, engine.Remote{})
	if err != nil {
		return err
	}
	defer b.Close()

	project := fmt.Sprintf("hoistbench%d", os.Getpid())
	matrixDir := filepath.Join(dir, "matrix")
	matrix, err := benchutil.Matrix(matrixDir, project)
	if err != nil {
		return err
	}
	bases, err := realworld.MakeBases(ctx, e)
	if err != nil {
		return err
	}
	idx, err := realworld.ServeIndex(filepath.Join(dir, "index"))
	if err != nil {
		return err
	}
	defer idx.Close()
	rwDir := filepath.Join(dir, "realworld")
	for name, body := range realworld.Files(project+"rw", bases, idx.URL) {
		p := filepath.Join(rwDir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return err
		}
	}
	rw, err := config.Load(filepath.Join(rwDir, "hoist.yaml"))
	if err != nil {
		return err
	}

	fmt.Printf("%d rounds (median), Images parallel=%d, %d cores; anchor: docker buildx bake (buildx %s, docker driver)\n", rounds, parallel, runtime.NumCPU(), benchutil.BuildxVersion)
	ok := true
	for _, set := range []struct {
		key, name string
		cfg       *config.Config
	}{
		{"matrix", "14-image matrix", matrix},
		{"realworld", "real-world Dockerfiles (compile, pip, npm)", rw},
	} {
		if only != "" && only != set.key {
			continue
		}
		r, err := measure(ctx, e, b, set.cfg, dockerConfig, rounds, parallel)
		if err != nil {
			return fmt.Errorf("%s: %w", set.name, err)
		}
		fmt.Println(set.name + ":")
		ok = benchutil.Report("  cold (no cache)", r.hc, r.bc, "buildx bake --no-cache", 1.0) && ok
		ok = benchutil.Report("  nothing changed", r.hw, r.bw, "buildx bake", 0.05) && ok
	}
	if !ok {
		os.Exit(2)
	}
	return nil
}

type medians struct{ hc, bc, hw, bw time.Duration }

func measure(ctx context.Context, e *engine.Engine, b *engine.Builder, cfg *config.Config, dockerConfig string, rounds, parallel int) (medians, error) {
	p, err := benchutil.Plan(cfg)
	if err != nil {
		return medians{}, err
	}
	defer cleanup(e, p)
	lockPath := filepath.Join(cfg.Path(cfg.BuildDir), "lock.json")
	hoistBuild := func(rebuild bool) error {
		// What the Images target does: plan (renders Dockerfiles), then build.
		p, err := benchutil.Plan(cfg)
		if err != nil {
			return err
		}
		_, err = images.Build(ctx, e, b, p, lockPath, images.Options{Parallel: parallel, Rebuild: rebuild})
		return err
	}
	bakeFile := filepath.Join(cfg.Path(cfg.BuildDir), "docker-bake.json")
	if err := os.MkdirAll(filepath.Dir(bakeFile), 0o755); err != nil {
		return medians{}, err
	}
	if err := writeBake(bakeFile, p); err != nil {
		return medians{}, err
	}
	bake := func(noCache bool) error {
		args := []string{"buildx", "bake", "-f", bakeFile, "--load", "--progress", "quiet", "--allow", "network.host"}
		if noCache {
			args = append(args, "--no-cache")
		}
		cmd := exec.CommandContext(ctx, "docker", args...)
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+dockerConfig, "BUILDX_NO_DEFAULT_ATTESTATIONS=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("docker %v: %v\n%s", args, err, out)
		}
		return nil
	}
	// Warm up: bases exist, caches and cache mounts are filled for both.
	if err := hoistBuild(false); err != nil {
		return medians{}, err
	}
	if err := bake(false); err != nil {
		return medians{}, err
	}
	var hc, bc, hw, bw []time.Duration
	type step struct {
		into *[]time.Duration
		fn   func() error
	}
	for i := 0; i < rounds; i++ {
		cold := []step{{&hc, func() error { return hoistBuild(true) }}, {&bc, func() error { return bake(true) }}}
		warm := []step{{&hw, func() error { return hoistBuild(false) }}, {&bw, func() error { return bake(false) }}}
		if i%2 == 1 {
			// Take turns going first, so a machine that gets busier or
			// quieter during a round favours neither.
			cold[0], cold[1] = cold[1], cold[0]
			warm[0], warm[1] = warm[1], warm[0]
		}
		for _, m := range append(cold, warm...) {
			d, err := benchutil.Time(m.fn)
			if err != nil {
				return medians{}, err
			}
			*m.into = append(*m.into, d)
		}
	}
	for i := range hc {
		// Every round, so the spread on a shared machine is visible.
		fmt.Printf("  round %d: cold hoist %.3fs bake %.3fs; unchanged hoist %.3fs bake %.3fs\n",
			i+1, hc[i].Seconds(), bc[i].Seconds(), hw[i].Seconds(), bw[i].Seconds())
	}
	return medians{benchutil.Median(hc), benchutil.Median(bc), benchutil.Median(hw), benchutil.Median(bw)}, nil
}

// writeBake writes a bake file with one target per planned image: same
// context, Dockerfile, arguments, labels and network as Images gives it.
func writeBake(path string, p *plan.Plan) error {
	type target struct {
		Context    string            `json:"context"`
		Dockerfile string            `json:"dockerfile"`
		Args       map[string]string `json:"args,omitempty"`
		Labels     map[string]string `json:"labels,omitempty"`
		Tags       []string          `json:"tags"`
		Network    string            `json:"network,omitempty"`
		Target     string            `json:"target,omitempty"`
	}
	f := struct {
		Group  map[string]map[string][]string `json:"group"`
		Target map[string]target              `json:"target"`
	}{Group: map[string]map[string][]string{"default": {"targets": nil}}, Target: map[string]target{}}
	for _, img := range p.Images {
		network := img.Network
		if network == "" || network == config.NetworkDefault {
			network = config.NetworkNone // this engine has no bridge; Images uses none too
		}
		name := strings.NewReplacer(".", "_").Replace(img.Name) // bake allows [a-zA-Z0-9_-]
		f.Group["default"]["targets"] = append(f.Group["default"]["targets"], name)
		f.Target[name] = target{Context: img.ContextDir, Dockerfile: img.Dockerfile, Args: img.Args, Labels: img.Labels,
			Tags: []string{img.Ref + "-bake"}, Network: network, Target: img.Target}
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func cleanup(e *engine.Engine, p *plan.Plan) {
	ctx := context.Background()
	for _, img := range p.Images {
		e.Remove(ctx, img.Ref)
		e.Remove(ctx, img.Ref+"-bake")
	}
	for _, b := range p.Bases {
		e.Remove(ctx, b.Ref)
	}
}
