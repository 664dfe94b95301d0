package scan

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hoistci/hoist/internal/scantest"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/trivy"
)

// helperEnv makes the test binary, started again by a test, play a scan
// that starts its trivy server and its workers and then is killed.
const helperEnv = "HOIST_SCAN_TEST_KILLED_PARENT"

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		os.Exit(killedParent(spec))
	}
	os.Exit(m.Run())
}

// killedParent starts a trivy server (on the cache folder given) and a
// worker the way a scan does, prints their pids, and waits to be killed.
func killedParent(spec string) int {
	f := strings.Split(spec, "\x1f") // trivy, worker, cache folder, work folder
	if len(f) != 4 {
		fmt.Fprintln(os.Stderr, "helper: want trivy, worker, cache and work folders")
		return 2
	}
	srv, err := startServer(context.Background(), f[0], f[2], f[3], true, "")
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	w, err := startWorker(f[1], f[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	// Work that ends its goroutine on a thread of its own, as some
	// libraries do: the children must still live as long as this process.
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		close(done)
	}()
	<-done
	fmt.Printf("%d %d\n", srv.cmd.Process.Pid, w.cmd.Process.Pid)
	select {} // until killed
}

// TestKilledScanLeavesNoTrivy kills a scan outright (SIGKILL) while its
// trivy server and a worker run: both must end with it. A trivy server
// left running kept the vulnerability DB locked, so every later scan
// waited for ever ("another Trivy holds the vulnerability DB").
func TestKilledScanLeavesNoTrivy(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the parent-death signal is Linux's")
	}
	testenv.Binary(t, "go", "golang-go")
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Minute)
	defer cancel()
	cache, _ := os.UserCacheDir()
	topts := trivy.Options{Dir: filepath.Join(cache, "hoist", "tools"), NoPath: true}
	tool, err := trivy.Ensure(ctx, topts)
	if err != nil {
		t.Fatal(err)
	}
	worker, err := trivy.EnsureWorker(ctx, topts)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dbDir, err := scantest.WriteDB(ctx, testenv.RepoRoot(t), filepath.Join(dir, "db-src"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cacheDir := filepath.Join(dir, "cache")
	if _, err := prepareOfflineDB(dbDir, cacheDir); err != nil {
		t.Fatal(err)
	}

	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), helperEnv+"="+strings.Join([]string{tool.Path, worker.Path, cacheDir, dir}, "\x1f"))
	helper.Stderr = os.Stderr
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		helper.Process.Kill()
		helper.Wait()
		t.Fatalf("the helper scan printed no pids: %v", err)
	}
	var pids []int
	for _, f := range strings.Fields(line) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("helper printed %q", line)
		}
		pids = append(pids, pid)
	}
	// Held before the kill, so a pid reused after it is never mistaken.
	fds := make([]unix.PollFd, len(pids))
	for i, pid := range pids {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			t.Fatalf("pid %d: %v", pid, err)
		}
		defer unix.Close(fd)
		fds[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	}
	t.Cleanup(func() { // whatever the outcome, nothing is left
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})

	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	names := []string{"trivy server", "hoist-trivy-worker"}
	for i := range fds {
		one := fds[i : i+1]
		if _, err := unix.Poll(one, 30_000); err != nil || one[0].Revents == 0 {
			t.Errorf("%s (pid %d) outlived the scan that was killed (%v)", names[i], pids[i], err)
		}
	}

	// The DB is free for the next scan at once.
	free, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	if err := waitDBFree(free, filepath.Join(cacheDir, "db", "trivy.db"), io.Discard); err != nil {
		t.Fatal(err)
	}
}
