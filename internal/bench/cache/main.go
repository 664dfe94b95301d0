// Command cache measures the registry build cache: a cold machine (a
// fresh standalone buildkitd with nothing in it) building the 14-entry
// matrix with a warm registry cache (registry.cache, written once by
// another daemon) against the same cold machine without it, taking turns.
//
//	go run ./internal/bench/cache [-rounds 3] [-payload-kib 4096]
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/hoistci/hoist/internal/bench/benchutil"
	"github.com/hoistci/hoist/internal/buildkitd"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/localregistry"
	"github.com/hoistci/hoist/pkg/lock"
	"github.com/hoistci/hoist/pkg/pipeline"
	"github.com/hoistci/hoist/pkg/settings"
)

func main() {
	rounds := flag.Int("rounds", 3, "measurements of each side; the median is reported")
	payload := flag.Int("payload-kib", 4096, "each image's own layer")
	flag.Parse()
	if err := run(context.Background(), *rounds, *payload<<10); err != nil {
		fmt.Fprintln(os.Stderr, "bench cache:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, rounds, payload int) error {
	e, err := engine.Connect(ctx, engine.Options{})
	if err != nil {
		return err
	}
	defer e.Close()
	work, err := os.MkdirTemp("", "hoist-bench-cache-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	cache, _ := os.UserCacheDir()
	bin, err := buildkitd.Ensure(ctx, filepath.Join(cache, "hoist", "tools"), os.Stderr)
	if err != nil {
		return err
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		return err
	}
	reg, err := localregistry.Start(ctx, localregistry.Options{Dir: filepath.Join(work, "registry")})
	if err != nil {
		return err
	}
	defer reg.Close()
	project := fmt.Sprintf("hoistcache%d", time.Now().UnixNano()%1e6)
	var refs []string
	defer func() {
		for _, r := range refs {
			e.Remove(context.Background(), r)
		}
	}()
	n := 0
	// build builds the matrix in a fresh checkout on a fresh daemon, with
	// or without the registry cache, and returns how long Images took.
	build := func(withCache bool) (time.Duration, error) {
		n++
		d, err := buildkitd.Start(ctx, bin, runc, filepath.Join(work, fmt.Sprintf("daemon-%d", n)))
		if err != nil {
			return 0, err
		}
		defer d.Stop()
		dir := filepath.Join(work, fmt.Sprintf("repo-%d", n))
		extra := fmt.Sprintf("network: none\nregistry: {host: %q, repository: bench, cache: %v}\n", reg.Host, withCache)
		if _, err := benchutil.MatrixOf(dir, project, benchutil.Shape{Pythons: 7, Runtimes: 2, Payload: payload, Extra: extra}); err != nil {
			return 0, err
		}
		if err := os.WriteFile(filepath.Join(dir, "VERSION"), []byte("1.0.0\n"), 0o644); err != nil {
			return 0, err
		}
		set, err := settings.Read([]string{"HOIST_CONFIG=" + filepath.Join(dir, "hoist.yaml"), "HOME=" + os.Getenv("HOME"), "PATH=" + os.Getenv("PATH"),
			"BUILDKIT_HOST=" + d.Addr, "HOIST_BUILDKIT_CA=" + d.TLS.CA, "HOIST_BUILDKIT_CERT=" + d.TLS.ClientCert, "HOIST_BUILDKIT_KEY=" + d.TLS.ClientKey})
		if err != nil {
			return 0, err
		}
		var out bytes.Buffer
		r, err := pipeline.Open(ctx, set, &out)
		if err != nil {
			return 0, err
		}
		defer r.Close()
		// The engine holds none of the images: each one is built.
		if l, _ := lock.Read(r.LockPath); l != nil {
			return 0, fmt.Errorf("%s exists before the first build", r.LockPath)
		}
		p, err := r.Plan(ctx)
		if err != nil {
			return 0, err
		}
		for _, img := range p.Images {
			e.Remove(ctx, img.Ref)
			refs = append(refs, img.Ref)
		}
		refs = append(refs, project+"/busybox:1")
		return benchutil.Time(func() error {
			res, err := r.Images(ctx)
			if err != nil {
				return fmt.Errorf("%w\n%s", err, out.String())
			}
			if len(res) != 14 {
				return fmt.Errorf("%d images built, want 14", len(res))
			}
			return nil
		})
	}
	fmt.Fprintln(os.Stderr, "warming the registry cache from one daemon...")
	if _, err := build(true); err != nil {
		return err
	}
	var warm, none []time.Duration
	for i := 0; i < rounds; i++ {
		var w, c time.Duration
		for k := 0; k < 2; k++ {
			withCache := (k+i)%2 == 0
			d, err := build(withCache)
			if err != nil {
				return err
			}
			if withCache {
				w = d
			} else {
				c = d
			}
		}
		warm, none = append(warm, w), append(none, c)
		fmt.Printf("round %d: cold daemon with the registry cache %.2f s, without %.2f s (%.2fx)\n", i+1, w.Seconds(), c.Seconds(), w.Seconds()/c.Seconds())
	}
	w, c := benchutil.Median(warm), benchutil.Median(none)
	fmt.Printf("\n14 images (%d KiB own layer each) on a fresh buildkitd, %d rounds, medians; %d cores\n", payload>>10, rounds, runtime.NumCPU())
	fmt.Printf("| what | without cache | with warm registry cache | ratio |\n|---|---|---|---|\n")
	fmt.Printf("| Images on a cold machine | %.2f s | %.2f s | %.2fx |\n", c.Seconds(), w.Seconds(), w.Seconds()/c.Seconds())
	return nil
}
