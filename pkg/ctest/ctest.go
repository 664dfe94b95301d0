// Package ctest runs each built image's test command in its own container:
// no network unless asked for, no privilege, every test run even when one
// fails, each log kept in a file named after the image, results recorded in
// the lock file (which Push requires) and summed up in a table.
package ctest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/hoistci/hoist/pkg/lock"
)

// Case is one image's test.
type Case struct {
	Name    string // the image's name in the plan; the log is test-NAME.log
	Ref     string // reference in the engine, for messages
	ImageID string // the image tested: the container runs exactly this ID
	Command []string
	Network string        // none (default) or host
	Timeout time.Duration // 0: no limit but the caller's
	Env     []string      // KEY=VALUE
	// Platform is set for one platform's image of an image with platforms
	// (e.g. linux/arm64, run under emulation on another machine); the log
	// is then test-NAME-linux-arm64.log and the result is recorded on that
	// platform.
	Platform string
}

// Result is one test's outcome.
type Result struct {
	Name     string
	Ref      string
	ImageID  string
	Platform string // the case's
	Passed   bool
	ExitCode int    // -1 when the test did not run to an exit
	Log      string // path of the saved log
	Duration time.Duration
	Err      error // why it did not run or finish (not a failing exit)
	At       time.Time
}

// Options tune Run.
type Options struct {
	LogDir   string    // where test-NAME.log files go (created if missing)
	Parallel int       // tests at once (default 1)
	LockPath string    // when set, results are recorded in this lock file
	Summary  io.Writer // when set, the table of results is written here
}

// ErrFailed means at least one test failed; the Results say which.
var ErrFailed = errors.New("container tests failed")

// Run runs every case, Parallel at a time, and returns the results in the
// order of cases. It fails with ErrFailed (wrapped, naming the failures)
// when any test fails, and with ctx's error when cancelled; containers are
// removed in every case, and those a killed run left are removed too.
func Run(ctx context.Context, api client.APIClient, cases []Case, o Options) ([]Result, error) {
	if o.Parallel < 1 {
		o.Parallel = 1
	}
	if err := os.MkdirAll(o.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the log folder: %w", err)
	}
	// Containers a killed run left behind go, beside the tests.
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		removeLeftovers(sctx, api)
	}()
	defer func() { <-swept }()
	results := make([]Result, len(cases))
	// A plain group, not WithContext: one failing test must not stop the
	// others; every test runs and is reported.
	var g errgroup.Group
	g.SetLimit(o.Parallel)
	for i, c := range cases {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				results[i] = Result{Name: c.Name, Ref: c.Ref, ImageID: c.ImageID, Platform: c.Platform, ExitCode: -1, Err: err}
				return nil
			}
			results[i] = runOne(ctx, api, c, o.LogDir)
			return nil
		})
	}
	_ = g.Wait() // every function returns nil: results carry the outcomes
	if ctx.Err() != nil {
		return results, fmt.Errorf("container tests: %w", ctx.Err())
	}
	if o.LockPath != "" {
		if err := record(ctx, o.LockPath, results); err != nil {
			return results, err
		}
	}
	if o.Summary != nil {
		Summary(o.Summary, results)
	}
	var failed []string
	for _, r := range results {
		if !r.Passed {
			failed = append(failed, r.label())
		}
	}
	if len(failed) > 0 {
		return results, fmt.Errorf("%w: %s (logs in %s)", ErrFailed, strings.Join(failed, ", "), o.LogDir)
	}
	return results, nil
}

// LogPath is where a test's log goes.
func LogPath(dir, name string) string { return filepath.Join(dir, "test-"+name+".log") }

// PlatformLogPath is where the log of a test on one platform goes.
func PlatformLogPath(dir, name, platform string) string {
	if platform == "" {
		return LogPath(dir, name)
	}
	return LogPath(dir, name+"-"+strings.ReplaceAll(platform, "/", "-"))
}

// label names the result's image, and its platform when it has one.
func (r Result) label() string {
	if r.Platform == "" {
		return r.Name
	}
	return r.Name + " (" + r.Platform + ")"
}

func runOne(ctx context.Context, api client.APIClient, c Case, logDir string) (r Result) {
	r = Result{Name: c.Name, Ref: c.Ref, ImageID: c.ImageID, Platform: c.Platform, ExitCode: -1, Log: PlatformLogPath(logDir, c.Name, c.Platform), At: time.Now().UTC()}
	start := time.Now()
	defer func() { r.Duration = time.Since(start) }()
	f, err := os.Create(r.Log)
	if err != nil {
		r.Err = fmt.Errorf("creating the log: %w", err)
		return r
	}
	defer f.Close()
	code, err := runContainer(ctx, api, c, f)
	r.ExitCode = code
	if err != nil {
		r.Err = err
		fmt.Fprintf(f, "\nhoist: %v\n", err)
		return r
	}
	r.Passed = code == 0
	return r
}

// runContainer runs the test and copies its output to log. The container is
// removed however this ends, including when ctx is cancelled.
func runContainer(ctx context.Context, api client.APIClient, c Case, log io.Writer) (int, error) {
	network := c.Network
	if network == "" {
		network = "none"
	}
	tctx := ctx
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		tctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	// A store keeping several platforms under one name (containerd's)
	// picks the one asked for; without one it would pick the engine's.
	var platform *ocispec.Platform
	if c.Platform != "" {
		parts := strings.SplitN(c.Platform, "/", 3)
		platform = &ocispec.Platform{OS: parts[0], Architecture: parts[1]}
		if len(parts) == 3 {
			platform.Variant = parts[2]
		}
	}
	created, err := api.ContainerCreate(ctx, &container.Config{
		Image:  c.ImageID,
		Cmd:    c.Command,
		Env:    c.Env,
		Labels: map[string]string{"io.hoist.test": c.Name, LabelOwner: owner()},
		// Without a network the engine skips its network sandbox for the
		// container, and with it a hook that starts a copy of the engine's
		// own binary at every container start (about 0.1 s of CPU each,
		// the largest part of a short test's cost). The container still
		// gets a namespace of its own with only the loopback interface,
		// up, exactly what network "none" gives.
		NetworkDisabled: network == "none",
	}, &container.HostConfig{NetworkMode: container.NetworkMode(network)}, nil, platform, "")
	if err != nil {
		return -1, fmt.Errorf("creating the test container for %s: %w", c.Ref, err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = api.ContainerRemove(rctx, created.ID, container.RemoveOptions{Force: true})
	}()
	// Attach before starting, so no early output is lost.
	att, err := api.ContainerAttach(ctx, created.ID, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return -1, fmt.Errorf("attaching to the test container of %s: %w", c.Ref, err)
	}
	defer att.Close()
	stop := context.AfterFunc(tctx, att.Close)
	defer stop()
	copied := make(chan struct{})
	go func() {
		// Ends with the connection: when the container exits, or when it is
		// closed on timeout or cancel. A write error to the log file shows
		// as a short log; the exit code is what decides.
		_, _ = stdcopy.StdCopy(log, log, att.Reader)
		close(copied)
	}()
	waitC, errC := api.ContainerWait(ctx, created.ID, container.WaitConditionNextExit)
	if err := api.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		att.Close()
		<-copied // the log copy ends with the connection
		return -1, fmt.Errorf("starting the test of %s: %w", c.Ref, err)
	}
	select {
	case w := <-waitC:
		<-copied // the log copy ends with the connection
		if w.Error != nil {
			return int(w.StatusCode), fmt.Errorf("waiting for the test of %s: %s", c.Ref, w.Error.Message)
		}
		return int(w.StatusCode), nil
	case err := <-errC:
		att.Close()
		<-copied // the log copy ends with the connection
		if ctx.Err() != nil {
			return -1, ctx.Err()
		}
		return -1, fmt.Errorf("waiting for the test of %s: %w", c.Ref, err)
	case <-tctx.Done():
		att.Close()
		<-copied // the log copy ends with the connection
		if ctx.Err() != nil {
			return -1, ctx.Err()
		}
		return -1, fmt.Errorf("timed out after %s: raise test.timeout in hoist.yaml or make the test faster", c.Timeout)
	}
}

// record stores each result on its image in the lock file.
func record(ctx context.Context, path string, results []Result) error {
	return lock.UpdateContext(ctx, path, func(l *lock.Lock) error {
		summed := map[string]*lock.Image{}
		for _, r := range results {
			img, ok := l.Find(r.Name)
			if !ok {
				return fmt.Errorf("recording the test of %s: the lock file has no such image: run the Images target", r.Name)
			}
			t := &lock.Test{
				Passed:   r.Passed,
				ExitCode: r.ExitCode,
				Log:      r.Log,
				Duration: r.Duration.Round(time.Millisecond).String(),
				At:       r.At,
				ImageID:  r.ImageID,
			}
			if r.Platform == "" {
				img.Test = t
				continue
			}
			p, ok := img.FindPlatform(r.Platform)
			if !ok {
				return fmt.Errorf("recording the test of %s on %s: the lock file has no such platform for it: run the Images target", r.Name, r.Platform)
			}
			p.Test = t
			summed[r.Name] = img
		}
		for _, img := range summed {
			img.Test = img.PlatformsTest()
		}
		return nil
	})
}

// Summary writes the table of results.
func Summary(w io.Writer, results []Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tRESULT\tEXIT\tTIME\tLOG")
	passed := 0
	for _, r := range results {
		res := "FAIL"
		switch {
		case r.Passed:
			res = "pass"
			passed++
		case r.Err != nil:
			res = "ERROR: " + oneLine(r.Err.Error())
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", r.label(), res, r.ExitCode, r.Duration.Round(10*time.Millisecond), r.Log)
	}
	_ = tw.Flush() // a failing writer shows in the line below as well
	fmt.Fprintf(w, "%d of %d container tests passed\n", passed, len(results))
}

func oneLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}
