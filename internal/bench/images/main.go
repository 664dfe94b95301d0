// Command images compares the Images stage with a plain `docker build` loop
// over the same generated Dockerfiles, in one run on one engine:
//
//	go run ./internal/bench/images [-rounds 3]
//
// Cold: Images with HOIST_REBUILD semantics (no cache) against `docker build
// --no-cache`. Nothing changed: Images again against `docker build` again.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"time"

	"github.com/hoistci/hoist/internal/bench/benchutil"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/images"
	"github.com/hoistci/hoist/pkg/plan"
)

func main() {
	rounds := flag.Int("rounds", 3, "rounds of each measurement; the median is reported")
	parallel := flag.Int("parallel", 2*runtime.NumCPU(), "Images' concurrent solves")
	flag.Parse()
	if err := run(*rounds, *parallel); err != nil {
		fmt.Fprintln(os.Stderr, "bench images:", err)
		os.Exit(1)
	}
}

func run(rounds, parallel int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "hoist-bench-images-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	project := fmt.Sprintf("hoistbench%d", os.Getpid())
	cfg, err := benchutil.Matrix(dir, project)
	if err != nil {
		return err
	}
	e, err := engine.Connect(ctx, engine.Options{})
	if err != nil {
		return fmt.Errorf("%w (bash scripts/engine-up.sh starts one)", err)
	}
	defer e.Close()
	b, err := e.Builder(ctx, "")
	if err != nil {
		return err
	}
	defer b.Close()
	p, err := benchutil.Plan(cfg)
	if err != nil {
		return err
	}
	defer cleanup(e, p)
	lockPath := dir + "/build/lock.json"
	hoistBuild := func(rebuild bool) error {
		// What the Images target does: plan (renders Dockerfiles), then build.
		p, err := benchutil.Plan(cfg)
		if err != nil {
			return err
		}
		_, err = images.Build(ctx, e, b, p, lockPath, images.Options{Parallel: parallel, Rebuild: rebuild})
		return err
	}
	var cli string
	var buildkit bool
	dockerLoop := func(noCache bool) error {
		for _, img := range p.Images {
			args := []string{"build", "-q", "--network", "none", "-t", img.Ref + "-docker", "-f", img.Dockerfile}
			if noCache {
				args = append(args, "--no-cache")
			}
			for k, v := range img.Args {
				args = append(args, "--build-arg", k+"="+v)
			}
			cmd := exec.CommandContext(ctx, cli, append(args, img.ContextDir)...)
			if buildkit {
				cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=1")
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("%s %v: %v\n%s", cli, args, err, out)
			}
		}
		return nil
	}
	// Warm up: the base exists and both builders have seen the Dockerfiles.
	if err := hoistBuild(false); err != nil {
		return err
	}
	cli, buildkit = dockerCLI(ctx, p) // needs the base the warm-up made
	if err := dockerLoop(false); err != nil {
		return err
	}
	var hc, dc, hw, dw []time.Duration
	for i := 0; i < rounds; i++ {
		d, err := benchutil.Time(func() error { return hoistBuild(true) })
		if err != nil {
			return err
		}
		hc = append(hc, d)
		if d, err = benchutil.Time(func() error { return dockerLoop(true) }); err != nil {
			return err
		}
		dc = append(dc, d)
		if d, err = benchutil.Time(func() error { return hoistBuild(false) }); err != nil {
			return err
		}
		hw = append(hw, d)
		if d, err = benchutil.Time(func() error { return dockerLoop(false) }); err != nil {
			return err
		}
		dw = append(dw, d)
	}
	builder := "legacy builder"
	if buildkit {
		builder = "BuildKit (DOCKER_BUILDKIT=1)"
	}
	fmt.Printf("14 images, ~4 MiB distinct layer each, %d rounds (median), Images parallel=%d, %d cores; anchor: %s build, %s\n", rounds, parallel, runtime.NumCPU(), cli, builder)
	ok1 := benchutil.Report("cold (no cache)", benchutil.Median(hc), benchutil.Median(dc), "docker build --no-cache", 1.0)
	ok2 := benchutil.Report("nothing changed", benchutil.Median(hw), benchutil.Median(dw), "docker build", 0.15)
	if !ok1 || !ok2 {
		os.Exit(2)
	}
	return nil
}

// dockerCLI picks the strongest `docker build` this machine has: a CLI that
// builds with BuildKit (DOCKER_BUILDKIT=1 works without buildx on the 20.10
// CLI), else the legacy builder.
func dockerCLI(ctx context.Context, p *plan.Plan) (string, bool) {
	img := p.Images[0]
	for _, cli := range []string{"docker", "/usr/bin/docker"} {
		cmd := exec.CommandContext(ctx, cli, "build", "-q", "--network", "none", "-t", img.Ref+"-probe", "-f", img.Dockerfile, img.ContextDir)
		cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=1")
		for k, v := range img.Args {
			cmd.Args = append(cmd.Args[:len(cmd.Args)-1], "--build-arg", k+"="+v, img.ContextDir)
		}
		if err := cmd.Run(); err == nil {
			exec.Command(cli, "rmi", img.Ref+"-probe").Run()
			return cli, true
		}
	}
	return "docker", false
}

func cleanup(e *engine.Engine, p *plan.Plan) {
	ctx := context.Background()
	for _, img := range p.Images {
		e.Remove(ctx, img.Ref)
		e.Remove(ctx, img.Ref+"-docker")
	}
	for _, b := range p.Bases {
		e.Remove(ctx, b.Ref)
	}
}
