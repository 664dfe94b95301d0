package localregistry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hoistci/hoist/pkg/lock"
)

// Ensure returns the checkout's local registry, the one whose folder is
// o.Dir, starting it when it is not running. It is go-containerregistry's
// registry with its data on disk (see Serve), run as a program of its own
// on 127.0.0.1 so it outlives the caller: later Push and Promote runs reuse
// it, and Stop ends it.
//
// The port is o.Port when set; else the one recorded in o.Dir/port, else a
// free one, then recorded. What answers on that port is reused only when it
// proves to be this folder's registry; anything else makes Ensure pick
// another port, or, when o.Port was asked for, refuse.
func Ensure(ctx context.Context, o Options) (*Server, error) {
	dir, err := registryDir(o.Dir, true)
	if err != nil {
		return nil, err
	}
	unlock, err := waitLock(ctx, filepath.Join(dir, ensureLock))
	if err != nil {
		return nil, err
	}
	defer unlock()
	token, err := identityToken(dir)
	if err != nil {
		return nil, fmt.Errorf("starting the local registry: %w", err)
	}
	pinned := o.Port != 0
	port := o.Port
	if !pinned {
		port, _ = readInt(filepath.Join(dir, portFile)) // none recorded: 0, a free one
	}
	if port != 0 {
		id, err := probe(ctx, port)
		switch {
		case err == nil && id.Token == token && id.Dir == dir:
			return &Server{Host: host(port), Dir: dir, LogPath: filepath.Join(dir, logFile), PID: id.PID}, nil
		case errors.Is(err, errNothing):
		case pinned:
			return nil, fmt.Errorf("starting the local registry on %s: %s answers there, not this checkout's registry (%s): stop it, or set another registry.local_port in hoist.yaml", host(port), what(id, err), dir)
		default:
			port = 0 // the recorded port went to someone else
		}
	}
	// This folder's registry may still run, but not where it is wanted, or
	// hung: one process serves a folder, so end it first.
	if _, err := stop(ctx, dir); err != nil {
		return nil, err
	}
	prog, err := program(ctx, dir, o.Programs, o.ModuleDir)
	if err != nil {
		return nil, err
	}
	got, pid, err := launchProgram(ctx, prog, dir, port)
	if errors.Is(err, ErrPortBusy) && !pinned {
		got, pid, err = launchProgram(ctx, prog, dir, 0)
	}
	if errors.Is(err, ErrPortBusy) {
		return nil, fmt.Errorf("starting the local registry on %s: another program holds that port: stop it, or set another registry.local_port in hoist.yaml", host(port))
	}
	if err != nil {
		return nil, err
	}
	if err := lock.WriteFileAtomic(filepath.Join(dir, portFile), []byte(strconv.Itoa(got)+"\n")); err != nil {
		return nil, fmt.Errorf("recording the local registry's port: %w", err)
	}
	return &Server{Host: host(got), Dir: dir, LogPath: filepath.Join(dir, logFile), PID: pid}, nil
}

// State is what Status finds.
type State struct {
	Running bool
	Host    string // 127.0.0.1:PORT, the recorded port ("" when none is)
	PID     int    // when running
	Dir     string // the registry's folder; its data is in Dir/data
}

func (s State) String() string {
	if !s.Running {
		return "local registry not running (data in " + filepath.Join(s.Dir, dataDir) + ")"
	}
	return fmt.Sprintf("local registry running at %s (pid %d, data in %s)", s.Host, s.PID, filepath.Join(s.Dir, dataDir))
}

// Status reports whether the local registry of folder dir runs, and where.
func Status(ctx context.Context, dir string) (State, error) {
	d, err := registryDir(dir, false)
	if errors.Is(err, os.ErrNotExist) {
		return State{Dir: dir}, nil
	}
	if err != nil {
		return State{}, err
	}
	st := State{Dir: d}
	port, err := readInt(filepath.Join(d, portFile))
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("reading the local registry's port: %w", err)
	}
	st.Host = host(port)
	token, err := os.ReadFile(filepath.Join(d, identityFile))
	if err != nil {
		return st, nil // never started
	}
	if id, err := probe(ctx, port); err == nil && id.Token == strings.TrimSpace(string(token)) && id.Dir == d {
		st.Running, st.PID = true, id.PID
	}
	return st, nil
}

// Stop ends the local registry of folder dir and waits for it to exit. It
// reports whether one was running; stopping a stopped one does nothing.
func Stop(ctx context.Context, dir string) (bool, error) {
	d, err := registryDir(dir, false)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	unlock, err := waitLock(ctx, filepath.Join(d, ensureLock))
	if err != nil {
		return false, err
	}
	defer unlock()
	return stop(ctx, d)
}

// stop ends the process serving dir, if any: the holder of its server lock.
func stop(ctx context.Context, dir string) (bool, error) {
	lockPath := filepath.Join(dir, serverLock)
	f, err := tryLock(lockPath)
	if err != nil {
		return false, fmt.Errorf("stopping the local registry: %w", err)
	}
	if f != nil {
		f.Close()
		return false, nil
	}
	pid, err := readInt(filepath.Join(dir, serverPID))
	if err != nil || pid <= 0 {
		return false, fmt.Errorf("stopping the local registry: %s is held but its pid is unreadable (%v): end the hoist-registry process serving %s", lockPath, err, dir)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return false, fmt.Errorf("stopping the local registry (pid %d): %w", pid, err)
		}
		gone, err := waitUnlocked(ctx, lockPath, 10*time.Second)
		if gone {
			reap(pid)
		}
		if err != nil || gone {
			return gone, err
		}
	}
	return false, fmt.Errorf("stopping the local registry: pid %d still holds %s after SIGKILL", pid, lockPath)
}

// reap collects the exit status of pid, an exiting registry, when this
// process started it (a test, or a run that moved its registry); for any
// other process it does nothing.
func reap(pid int) {
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(pid, &ws, 0, nil)
}

// registryDir is dir made absolute with symbolic links resolved, so one
// folder has one name however it is reached; create makes it first.
func registryDir(dir string, create bool) (string, error) {
	if dir == "" {
		return "", errors.New("local registry: no folder given")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("local registry folder %s: %w", dir, err)
	}
	if create {
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return "", fmt.Errorf("creating the local registry folder: %w", err)
		}
	}
	return filepath.EvalSymlinks(abs)
}

func host(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// errNothing: nothing listens on the port.
var errNothing = errors.New("nothing listens")

// probe asks what answers on a loopback port whose it is.
func probe(ctx context.Context, port int) (identity, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var id identity
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host(port)+identityPath, nil)
	if err != nil {
		return id, err
	}
	resp, err := probeClient.Do(req)
	if errors.Is(err, syscall.ECONNREFUSED) {
		return id, errNothing
	}
	if err != nil {
		return id, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return id, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if err := json.Unmarshal(b, &id); err != nil || id.Token == "" {
		return identity{}, errors.New("an unknown server")
	}
	return id, nil
}

// probeClient never goes through a proxy: the registry is on loopback.
var probeClient = &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

// what names the server a probe found.
func what(id identity, err error) string {
	switch {
	case id.Dir != "":
		return "the local registry of " + id.Dir
	case err != nil:
		return "a server (" + err.Error() + ")"
	}
	return "a server"
}

// launchProgram starts the registry program on dir, detached in a session
// of its own, and waits for the line it reports readiness with.
func launchProgram(ctx context.Context, prog, dir string, port int) (int, int, error) {
	logf, err := os.OpenFile(filepath.Join(dir, logFile), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, 0, fmt.Errorf("starting the local registry: %w", err)
	}
	defer logf.Close() // the child has its own descriptor
	r, w, err := os.Pipe()
	if err != nil {
		return 0, 0, fmt.Errorf("starting the local registry: %w", err)
	}
	defer r.Close()
	// No context: the registry must not die with the call that started it.
	cmd := exec.Command(prog, "-dir", dir, "-port", strconv.Itoa(port), "-ready-fd", "3")
	cmd.Dir = dir
	cmd.Env = []string{}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return 0, 0, fmt.Errorf("starting the local registry: %w", err)
	}
	line, rerr := readReady(ctx, r)
	verb, rest, _ := strings.Cut(line, " ")
	if verb == "ready" {
		if p, err := strconv.Atoi(rest); err == nil {
			pid := cmd.Process.Pid
			_ = cmd.Process.Release() // it lives on by design
			return p, pid, nil
		}
	}
	// It failed to start, or is to be given up on: end and reap it.
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	logPath := filepath.Join(dir, logFile)
	switch {
	case verb == "busy":
		return 0, 0, ErrPortBusy
	case verb == "error":
		return 0, 0, fmt.Errorf("starting the local registry: %s (log: %s)", rest, logPath)
	case rerr != nil && ctx.Err() != nil:
		return 0, 0, fmt.Errorf("starting the local registry: %w", ctx.Err())
	case rerr != nil:
		return 0, 0, fmt.Errorf("starting the local registry: no answer within %s: see %s", startTimeout, logPath)
	}
	return 0, 0, fmt.Errorf("starting the local registry: it exited at once: see %s", logPath)
}

// startTimeout bounds the wait for a starting registry (replaying a long
// journal included).
const startTimeout = 60 * time.Second

// readReady reads the one line a starting registry writes before closing
// its end of the pipe.
func readReady(ctx context.Context, r *os.File) (string, error) {
	if err := r.SetReadDeadline(time.Now().Add(startTimeout)); err != nil {
		return "", err
	}
	stop := context.AfterFunc(ctx, func() { _ = r.SetReadDeadline(time.Now()) })
	defer stop()
	b, err := io.ReadAll(io.LimitReader(r, 4096))
	return string(bytes.TrimSpace(b)), err
}

// waitLock takes the lock at path, waiting while another process holds it.
func waitLock(ctx context.Context, path string) (func(), error) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		f, err := tryLock(path)
		if err != nil {
			return nil, err
		}
		if f != nil {
			return func() { f.Close() }, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %s: %w", path, ctx.Err())
		case <-t.C:
		}
	}
}

// waitUnlocked waits up to d for the lock at path to be free, which it is
// once its holder has exited.
func waitUnlocked(ctx context.Context, path string, d time.Duration) (bool, error) {
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	unlock, err := waitLock(wctx, path)
	switch {
	case err == nil:
		unlock()
		return true, nil
	case ctx.Err() != nil:
		return false, fmt.Errorf("stopping the local registry: %w", ctx.Err())
	case wctx.Err() != nil:
		return false, nil // still held after d
	}
	return false, err
}
