package scripts_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hoistci/hoist/internal/testenv"
)

// Two runs of modern-engine-up.sh at once, with no engine up, must both
// come back with the address, start one daemon, and leave nothing holding
// the start lock: a daemon that inherited the lock's descriptor made every
// later run wait for ever. The engine here has a root, data root and log
// of its own, so the engine the other tests use is left alone.
func TestModernEngineUpTwiceAtOnce(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Need(t, "starting a modern engine needs root")
	}
	root, err := os.MkdirTemp("", "hm") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	data := t.TempDir()
	log := filepath.Join(t.TempDir(), "dockerd.log")
	env := append(os.Environ(),
		"HOIST_MODERN_ROOT="+root, "HOIST_MODERN_DATA="+data, "HOIST_DOCKERD_LOG="+log)

	// Stop the daemon whatever happens below, and wait until it is gone.
	t.Cleanup(func() {
		b, err := os.ReadFile(filepath.Join(root, "dockerd.pid"))
		if err != nil {
			return
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return
		}
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			return
		}
		defer unix.Close(fd)
		if err := unix.Kill(pid, syscall.SIGTERM); err != nil {
			return
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int((30 * time.Second).Milliseconds())); err != nil || fds[0].Revents == 0 {
			t.Errorf("the test's dockerd (pid %d) did not end within 30s of SIGTERM; see %s", pid, log)
		}
	})

	type result struct {
		out, errOut bytes.Buffer
		err         error
	}
	// The daemon is built already (by .ci/run's own bring-up): a run that
	// takes longer than this is waiting on something that will not come.
	const limit = 3 * time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var runs [2]result
	var wg sync.WaitGroup
	for i := range runs {
		wg.Add(1)
		go func(r *result) {
			defer wg.Done()
			cmd := exec.CommandContext(ctx, "bash", "modern-engine-up.sh")
			cmd.Env = env
			cmd.Stdout, cmd.Stderr = &r.out, &r.errOut
			cmd.WaitDelay = time.Second
			r.err = cmd.Run()
			if ctx.Err() != nil {
				r.err = fmt.Errorf("still waiting after %s (on the start lock?): %w", limit, ctx.Err())
			}
		}(&runs[i])
	}
	wg.Wait()

	addr := "unix://" + filepath.Join(root, "docker.sock")
	starts := 0
	for i, r := range runs {
		if r.err != nil {
			t.Fatalf("run %d: %v\n%s", i+1, r.err, r.errOut.String())
		}
		if got := strings.TrimSpace(r.out.String()); got != addr {
			t.Errorf("run %d printed %q, want %q", i+1, got, addr)
		}
		starts += strings.Count(r.errOut.String(), "starting dockerd")
	}
	if starts != 1 {
		t.Errorf("the two runs started %d daemons, want 1:\n%s\n%s", starts, runs[0].errOut.String(), runs[1].errOut.String())
	}
	lock := filepath.Join(root, "start.lock")
	if holders := openedBy(t, lock); len(holders) > 0 {
		t.Errorf("%s is still held open by %s: a later run would wait on it for ever", lock, strings.Join(holders, ", "))
	}

	// A third run finds it answering.
	cmd := exec.Command("bash", "modern-engine-up.sh")
	cmd.Env = env
	if out, err := cmd.Output(); err != nil || strings.TrimSpace(string(out)) != addr {
		t.Errorf("a third run: %v, printed %q", err, out)
	}
}

// openedBy lists the processes (pid and command) holding path open.
func openedBy(t *testing.T, path string) []string {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		t.Fatal(err)
	}
	var holders []string
	for _, p := range procs {
		fds, _ := os.ReadDir(filepath.Join(p, "fd"))
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join(p, "fd", fd.Name())); err == nil && target == path {
				cmdline, _ := os.ReadFile(filepath.Join(p, "cmdline"))
				holders = append(holders, filepath.Base(p)+" ("+strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))+")")
				break
			}
		}
	}
	return holders
}
