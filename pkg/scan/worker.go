package scan

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hoistci/hoist/pkg/trivy"
)

// workers run a scan's Trivy clients and SBOM conversions in a few
// hoist-trivy-worker processes (Trivy's own command line, run once per
// request in one process; see trivy.EnsureWorker), each taking one request
// at a time, at most n at once. Starting the trivy binary once per image
// and again per SBOM cost about 50 ms of CPU each, before any work.
//
// They are used only where Trivy itself was built from the module proxy into
// the tools folder: building the worker then links packages the build cache
// already holds. With a trivy from PATH, or once the worker cannot be built
// or a worker dies, each command runs as its own trivy process.
type workers struct {
	ensure func(ctx context.Context) (trivy.Tool, error)
	dir    string // Trivy's working folder
	note   io.Writer
	slots  chan struct{}

	mu     sync.Mutex
	tool   *trivy.Tool
	failed error // set once: every later request runs as a trivy process
	idle   []*worker
}

// worker is one hoist-trivy-worker process.
type worker struct {
	cmd     *exec.Cmd
	in      io.WriteCloser
	answers *bufio.Reader
	log     tailBuffer
	done    chan struct{} // closed when the process has exited
}

// errWorkerGone is what a request gets when no worker can take it: its
// caller runs the command as a trivy process.
var errWorkerGone = errors.New("no Trivy worker")

// newWorkers returns the scan's workers, or nil where every command runs as
// a trivy process (a trivy from PATH).
func newWorkers(o Options, tool trivy.Tool, workDir string) *workers {
	if o.Trivy.Dir == "" || tool.Path != trivy.BinaryPath(o.Trivy.Dir, tool.Version) {
		return nil
	}
	to := o.Trivy
	to.Version = tool.Version
	return &workers{
		ensure: func(ctx context.Context) (trivy.Tool, error) { return trivy.EnsureWorker(ctx, to) },
		dir:    workDir,
		note:   o.Out,
		slots:  make(chan struct{}, max(1, o.Parallel)),
	}
}

// run runs one trivy command line (args without the program name) in a
// worker, starting one when none is idle, and gives it timeout once a
// worker has it (the wait for a free one is not the command's time).
// errWorkerGone means the command was not run and the caller should run it
// itself.
func (p *workers) run(ctx context.Context, timeout time.Duration, args []string) error {
	if p == nil {
		return errWorkerGone
	}
	select {
	case p.slots <- struct{}{}:
		defer func() { <-p.slots }()
	case <-ctx.Done():
		return ctx.Err()
	}
	w, err := p.take(ctx)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err = w.do(cctx, args)
	switch {
	case errors.Is(err, errWorkerGone):
		// It died (or answered nonsense): no request goes to a worker
		// again, and this one is run by the caller.
		p.fail(fmt.Errorf("a %s process ended: %s", trivy.WorkerName, w.log.last()))
	case cctx.Err() != nil || w.exited():
		// Past its deadline the command may still run: its answer would
		// come for the next request, so the process ends here.
		w.kill()
	default:
		p.mu.Lock()
		p.idle = append(p.idle, w)
		p.mu.Unlock()
	}
	return err
}

// runTrivy runs one trivy command line (args without the program name) in
// a worker, or, where none can take it, as its own trivy process with gc
// first in its environment; limit bounds it either way. token, when set,
// goes to a worker as a flag (over the pipe) and to a process in its
// environment (never in its arguments). reason is Trivy's last error line
// when it ran as a process; a worker's error carries its own.
func runTrivy(ctx context.Context, pool *workers, bin, workDir string, limit time.Duration, args []string, token string, gc []string) (timedOut bool, reason string, err error) {
	inWorker := args
	if token != "" {
		inWorker = append(append([]string{}, args...), "--token", token)
	}
	err = pool.run(ctx, limit, inWorker)
	if !errors.Is(err, errWorkerGone) {
		return errors.Is(err, context.DeadlineExceeded), "", err
	}
	cctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var log tailBuffer
	cmd := execTrivy(cctx, bin, args, workDir, token, &log)
	cmd.Env = append(append([]string{}, gc...), cmd.Env...)
	err = cmd.Run()
	return cctx.Err() != nil, log.last(), err
}

// prepare gets the worker program (building it the first time on this
// machine) before any request needs it.
func (p *workers) prepare(ctx context.Context) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ensureLocked(ctx)
}

// ensureLocked gets the program once; a failure sends every request to
// its own trivy process.
func (p *workers) ensureLocked(ctx context.Context) bool {
	if p.failed != nil {
		return false
	}
	if p.tool == nil {
		t, err := p.ensure(ctx)
		if err != nil {
			p.failLocked(err)
			return false
		}
		p.tool = &t
	}
	return true
}

// take returns an idle worker or starts one.
func (p *workers) take(ctx context.Context) (*worker, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed != nil {
		return nil, errWorkerGone
	}
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle = p.idle[:n-1]
		return w, nil
	}
	if !p.ensureLocked(ctx) {
		return nil, errWorkerGone
	}
	w, err := startWorker(p.tool.Path, p.dir)
	if err != nil {
		p.failLocked(err)
		return nil, errWorkerGone
	}
	return w, nil
}

func (p *workers) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failLocked(err)
}

func (p *workers) failLocked(err error) {
	if p.failed == nil {
		p.failed = err
		fmt.Fprintf(p.note, "scan: each Trivy command runs as its own process from here on (%v)\n", err)
	}
}

// close ends the idle workers: standard input closes and each exits; one
// that does not within 5 s is killed.
func (p *workers) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, w := range idle {
		_ = w.in.Close()
		select {
		case <-w.done:
		case <-time.After(5 * time.Second):
			w.kill()
		}
	}
}

func startWorker(path, dir string) (*worker, error) {
	r, wr, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	w := &worker{cmd: exec.Command(path), done: make(chan struct{})}
	w.cmd.Dir = dir
	// One process for many commands: the collector runs, but seldom (as
	// for scan clients).
	w.cmd.Env = append(append([]string{}, clientGC...), trivyEnv()...)
	w.cmd.Stdout, w.cmd.Stderr = &w.log, &w.log
	w.cmd.ExtraFiles = []*os.File{wr}
	w.answers = bufio.NewReader(r)
	if w.in, err = w.cmd.StdinPipe(); err == nil {
		err = startTied(w.cmd, func(error) {
			r.Close()
			close(w.done)
		})
	}
	wr.Close() // the child holds its own
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	return w, nil
}

// do sends one request and waits for its answer. errWorkerGone means the
// process could not take it or died before answering.
func (w *worker) do(ctx context.Context, args []string) error {
	req, err := json.Marshal(struct {
		Args []string `json:"args"`
	}{args})
	if err != nil {
		return err
	}
	type result struct {
		msg string
		err error
	}
	got := make(chan result, 1)
	go func() {
		var r result
		var ans struct {
			Error *string `json:"error"`
		}
		if _, r.err = w.in.Write(append(req, '\n')); r.err == nil {
			var line []byte
			if line, r.err = w.answers.ReadBytes('\n'); r.err == nil {
				if r.err = json.Unmarshal(line, &ans); r.err == nil && ans.Error == nil {
					r.err = fmt.Errorf("an answer without its error field: %q", line)
				}
			}
		}
		if r.err == nil {
			r.msg = *ans.Error
		}
		got <- r
	}()
	select {
	case r := <-got:
		if r.err != nil {
			w.kill()
			return errWorkerGone
		}
		if r.msg != "" {
			return errors.New(strings.ReplaceAll(r.msg, "\n", " "))
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *worker) exited() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

func (w *worker) kill() {
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.done
}
