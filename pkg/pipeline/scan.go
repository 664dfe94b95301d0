package pipeline

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/publish"
	"github.com/hoistci/hoist/pkg/scan"
	"github.com/hoistci/hoist/pkg/trivy"
)

// Scan runs the pinned Trivy on every built image (or the settings'
// subset) against the config's policy, recording findings in the lock.
func (r *Run) Scan(ctx context.Context) error { return r.scanTo(ctx, r.Out) }

// scanTo is Scan printing to out.
func (r *Run) scanTo(ctx context.Context, out io.Writer) error {
	return r.scanSharing(ctx, out, nil)
}

// scanSharing is scanTo handing its image layout to share, when set.
func (r *Run) scanSharing(ctx context.Context, out io.Writer, share *layoutShare) error {
	policy, err := scan.PolicyFrom(r.Cfg)
	if err != nil {
		return err
	}
	e, err := r.Engine(ctx)
	if err != nil {
		return err
	}
	cache := userCache()
	tools := r.toolsDir()
	dbDir := r.Set.TrivyDB
	if dbDir == "" && r.Cfg.Scan.DBDir != "" {
		dbDir = r.Cfg.Path(r.Cfg.Scan.DBDir)
	}
	o := scan.Options{
		LockPath: r.LockPath, Images: r.Set.Images, Policy: policy, Engine: e,
		Trivy:    trivy.Options{Version: r.Cfg.Scan.Trivy, Dir: tools},
		CacheDir: filepath.Join(cache, "hoist", "trivy"), DBDir: dbDir, DBRepository: r.Cfg.Scan.DBRepository,
		OutDir: filepath.Join(r.BuildDir(), "scan"), Parallel: r.Parallel(), Timeout: r.Cfg.Scan.Timeout,
		Out: out, StepSummary: r.Set.StepSummary, Rescan: r.Set.Rescan,
		SBOM: r.SBOMFormat(),
	}
	if share != nil {
		o.ShareLayout = share.give
	}
	_, err = scan.Run(ctx, o)
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
	e, err := r.Engine(ctx)
	if err != nil {
		return // Test reports it
	}
	r.share = nil
	if r.prestage && e.Store != engine.StoreContainerd {
		r.share = newLayoutShare()
	}
	ctx, cancel := context.WithCancel(ctx)
	a := &aheadScan{cancel: cancel, done: make(chan error, 1)}
	r.ahead = a
	share := r.share
	go func() {
		err := r.scanSharing(ctx, &a.out, share)
		if share != nil {
			share.none() // the blobs stop waiting for a layout
		}
		a.done <- err
	}()
}

// layoutShare hands the image layout the Scan beside Test exported to the
// blob upload beside it (pushAhead), so the images leave the engine once
// for both. Only on the classic store: a containerd store's push keeps its
// stored compressed layers, which a layout does not hold.
type layoutShare struct {
	offer chan string // the layout folder, or "" for none; holds one
	used  chan struct{}
	once  sync.Once
}

func newLayoutShare() *layoutShare {
	return &layoutShare{offer: make(chan string, 1), used: make(chan struct{})}
}

// give is the scan's side: it offers dir and keeps it until used closes.
func (s *layoutShare) give(dir string) <-chan struct{} {
	select {
	case s.offer <- dir:
	default:
	}
	return s.used
}

// none tells the upload that no layout is coming.
func (s *layoutShare) none() {
	select {
	case s.offer <- "":
	default:
	}
}

// take is the upload's side: the layout, or "" to export from the engine.
func (s *layoutShare) take(ctx context.Context) (string, func()) {
	select {
	case dir := <-s.offer:
		return dir, s.release
	case <-ctx.Done():
		return "", s.release
	}
}

// release lets the scan remove its layout.
func (s *layoutShare) release() { s.once.Do(func() { close(s.used) }) }

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
	staged publish.Staged
}

// pushAhead starts uploading the built images' missing blobs beside Test,
// on a line that pushes: the Push step after the gate then only writes
// manifests and tags. Nothing names the blobs until then.
func (r *Run) pushAhead(ctx context.Context) {
	// The scan keeps its layout until the upload is done with it: every
	// way out of here that starts no upload lets it go.
	share := r.share
	r.share = nil
	started := false
	defer func() {
		if share != nil && !started {
			share.release()
		}
	}()
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
	if share != nil {
		o.Layout = share.take
	}
	started = true
	go func() {
		st, err := publish.Prestage(ctx, c, e, o)
		if share != nil {
			share.release() // it may have needed no layout
		}
		a.staged = st
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
	case a.staged.Blobs > 0 && a.staged.FromLayout:
		r.logf("push: %d blob(s) went up while the images were tested (read from the scan's export)", a.staged.Blobs)
	case a.staged.Blobs > 0:
		r.logf("push: %d blob(s) went up while the images were tested", a.staged.Blobs)
	}
}
