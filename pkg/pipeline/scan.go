package pipeline

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"

	"github.com/hoistci/hoist/pkg/publish"
	"github.com/hoistci/hoist/pkg/scan"
	"github.com/hoistci/hoist/pkg/trivy"
)

// Scan runs the pinned Trivy on every built image (or the settings'
// subset) against the config's policy, recording findings in the lock.
func (r *Run) Scan(ctx context.Context) error { return r.scanTo(ctx, r.Out) }

// scanTo is Scan printing to out.
func (r *Run) scanTo(ctx context.Context, out io.Writer) error {
	policy, err := scan.PolicyFrom(r.Cfg)
	if err != nil {
		return err
	}
	e, err := r.Engine(ctx)
	if err != nil {
		return err
	}
	cache := userCache()
	tools := r.Set.ToolsDir
	if tools == "" {
		tools = filepath.Join(cache, "hoist", "tools")
	}
	dbDir := r.Set.TrivyDB
	if dbDir == "" && r.Cfg.Scan.DBDir != "" {
		dbDir = r.Cfg.Path(r.Cfg.Scan.DBDir)
	}
	_, err = scan.Run(ctx, scan.Options{
		LockPath: r.LockPath, Images: r.Set.Images, Policy: policy, Engine: e,
		Trivy:    trivy.Options{Version: r.Cfg.Scan.Trivy, Dir: tools},
		CacheDir: filepath.Join(cache, "hoist", "trivy"), DBDir: dbDir, DBRepository: r.Cfg.Scan.DBRepository,
		OutDir: filepath.Join(r.BuildDir(), "scan"), Parallel: r.Parallel(), Timeout: r.Cfg.Scan.Timeout,
		Out: out, StepSummary: r.Set.StepSummary, Rescan: r.Set.Rescan,
		SBOM: r.SBOMFormat(),
	})
	return err
}

func userCache() string {
	if d, err := os.UserCacheDir(); err == nil {
		return d
	}
	return os.TempDir()
}

// aheadScan is a Scan started beside Test (scanAhead).
type aheadScan struct {
	cancel context.CancelFunc
	out    bytes.Buffer
	done   chan error
}

// scanAhead starts Scan beside Test, on a release line where Scan follows
// Test: both only read the built images and each records its own results
// in the lock under its file lock, so neither waits for the other. Scan's
// output is held and printed at its own step (scanStep), so the log still
// reads step by step.
func (r *Run) scanAhead(ctx context.Context) {
	if _, err := r.Engine(ctx); err != nil {
		return // Test reports it
	}
	ctx, cancel := context.WithCancel(ctx)
	a := &aheadScan{cancel: cancel, done: make(chan error, 1)}
	r.ahead = a
	go func() { a.done <- r.scanTo(ctx, &a.out) }()
}

// scanStep is the Scan step: the result of the Scan started beside Test,
// or a Scan now.
func (r *Run) scanStep(ctx context.Context) error {
	a := r.ahead
	if a == nil {
		return r.Scan(ctx)
	}
	r.ahead = nil
	var err error
	select {
	case err = <-a.done:
	case <-ctx.Done():
		a.cancel()
		err = <-a.done
	}
	_, _ = r.Out.Write(a.out.Bytes())
	return err
}

// stopAhead stops a Scan and a blob upload started beside a Test whose
// line stopped there, and waits for them: nothing writes after the run.
func (r *Run) stopAhead() {
	if a := r.ahead; a != nil {
		r.ahead = nil
		a.cancel()
		if err := <-a.done; err != nil && !errors.Is(err, context.Canceled) {
			r.logf("hoist: the scan started beside Test stopped: %v", err)
		}
	}
	if a := r.staging; a != nil {
		r.staging = nil
		a.cancel()
		if err := <-a.done; err != nil && !errors.Is(err, context.Canceled) {
			r.logf("hoist: the blobs started beside Test stopped: %v", err)
		}
	}
}

// aheadPush is publish.Prestage started beside Test (pushAhead).
type aheadPush struct {
	cancel context.CancelFunc
	done   chan error
	n      int
}

// pushAhead starts uploading the built images' missing blobs beside Test,
// on a line that pushes: the Push step after the gate then only writes
// manifests and tags. Nothing names the blobs until then.
func (r *Run) pushAhead(ctx context.Context) {
	if !r.prestage {
		return
	}
	e, err := r.Engine(ctx)
	if err != nil {
		return
	}
	c, prefix, err := r.Registry(ctx)
	if err != nil {
		return // Push reports it
	}
	ctx, cancel := context.WithCancel(ctx)
	a := &aheadPush{cancel: cancel, done: make(chan error, 1)}
	r.staging = a
	o := publish.PushOptions{LockPath: r.LockPath, Prefix: prefix, WorkDir: filepath.Dir(r.LockPath), Parallel: r.Parallel()}
	go func() {
		n, err := publish.Prestage(ctx, c, e, o)
		a.n = n
		a.done <- err
	}()
}

// awaitPrestage waits for the blobs started beside Test, before a push.
func (r *Run) awaitPrestage() {
	a := r.staging
	if a == nil {
		return
	}
	r.staging = nil
	switch err := <-a.done; {
	case err != nil:
		r.logf("push: the blobs were not uploaded during the tests (%v): the push uploads them", err)
	case a.n > 0:
		r.logf("push: %d blob(s) went up while the images were tested", a.n)
	}
}
