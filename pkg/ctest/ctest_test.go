package ctest_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/ctest"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/lock"
)

func base(t *testing.T) (*engine.Engine, string) {
	e := testenv.Engine(t)
	ref := testenv.BusyboxBase(t, e)
	img, err := e.Inspect(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return e, img.ID
}

// leftovers lists the containers still carrying one of the test names.
func leftovers(t *testing.T, e *engine.Engine, names ...string) []string {
	t.Helper()
	var out []string
	for _, n := range names {
		cs, err := e.API.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "io.hoist.test="+n))})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			out = append(out, c.ID[:12])
		}
	}
	return out
}

func TestRunKeepsEveryResult(t *testing.T) { testenv.EachEngine(t, testRunKeepsEveryResult) }

func testRunKeepsEveryResult(t *testing.T) {
	e, id := base(t)
	dir := t.TempDir()
	lockPath := dir + "/lock.json"
	pass, fail, net := testenv.Unique("pass-"), testenv.Unique("fail-"), testenv.Unique("net-")
	if err := lock.Update(lockPath, func(l *lock.Lock) error {
		for _, n := range []string{pass, fail, net} {
			l.Put(lock.Image{Name: n, ImageID: id})
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	cases := []ctest.Case{
		{Name: fail, ImageID: id, Command: []string{"sh", "-c", "echo about to fail; echo on stderr >&2; exit 3"}},
		{Name: pass, ImageID: id, Command: []string{"sh", "-c", "echo all good: $GREETING"}, Env: []string{"GREETING=hi"}},
		// The default network is none: only the loopback interface exists,
		// and it is up (flags IFF_UP|IFF_LOOPBACK), so a test can serve and
		// reach 127.0.0.1.
		{Name: net, ImageID: id, Command: []string{"sh", "-c", "cat /proc/net/dev; test $(grep -c : /proc/net/dev) = 1 && grep -q 'lo:' /proc/net/dev && test $(cat /sys/class/net/lo/flags) = 0x9"}},
	}
	var sum bytes.Buffer
	res, err := ctest.Run(context.Background(), e.API, cases, ctest.Options{LogDir: dir + "/logs", Parallel: 2, LockPath: lockPath, Summary: &sum})
	if !errors.Is(err, ctest.ErrFailed) || !strings.Contains(err.Error(), fail) || strings.Contains(err.Error(), pass) {
		t.Fatalf("got %v, want ErrFailed naming only %s", err, fail)
	}
	tests := []struct {
		name     string
		passed   bool
		exit     int
		logWants []string
	}{
		{name: fail, passed: false, exit: 3, logWants: []string{"about to fail", "on stderr"}},
		{name: pass, passed: true, exit: 0, logWants: []string{"all good: hi"}},
		{name: net, passed: true, exit: 0, logWants: []string{"lo:"}},
	}
	l, err := lock.Read(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		r := res[i]
		if r.Name != tt.name || r.Passed != tt.passed || r.ExitCode != tt.exit || r.Err != nil || r.Duration <= 0 {
			t.Errorf("%s: got passed=%v exit=%d err=%v, want passed=%v exit=%d", tt.name, r.Passed, r.ExitCode, r.Err, tt.passed, tt.exit)
		}
		b, err := os.ReadFile(ctest.LogPath(dir+"/logs", tt.name))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tt.logWants {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s: log %q lacks %q", tt.name, b, w)
			}
		}
		img, _ := l.Find(tt.name)
		if img.Test == nil || img.Test.Passed != tt.passed || img.Test.ExitCode != tt.exit || img.Test.ImageID != id || img.Test.Log != r.Log || img.Test.Duration == "0s" {
			t.Errorf("%s: lock records %+v", tt.name, img.Test)
		}
	}
	if !strings.Contains(sum.String(), "2 of 3 container tests passed") || !strings.Contains(sum.String(), "FAIL") {
		t.Errorf("summary:\n%s", sum.String())
	}
	if left := leftovers(t, e, pass, fail, net); len(left) > 0 {
		t.Errorf("containers left behind: %v", left)
	}
}

func TestRunTimeoutAndCancel(t *testing.T) { testenv.EachEngine(t, testRunTimeoutAndCancel) }

func testRunTimeoutAndCancel(t *testing.T) {
	e, id := base(t)
	dir := t.TempDir()
	slow := testenv.Unique("slow-")
	res, err := ctest.Run(context.Background(), e.API, []ctest.Case{
		{Name: slow, ImageID: id, Command: []string{"sleep", "30"}, Timeout: 500 * time.Millisecond},
	}, ctest.Options{LogDir: dir})
	if !errors.Is(err, ctest.ErrFailed) || res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "timed out") {
		t.Fatalf("got %v / %+v, want a timeout failure", err, res[0])
	}

	cancelled := testenv.Unique("cancel-")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(500*time.Millisecond, cancel)
	_, err = ctest.Run(ctx, e.API, []ctest.Case{
		{Name: cancelled, ImageID: id, Command: []string{"sleep", "30"}},
	}, ctest.Options{LogDir: dir})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if left := leftovers(t, e, slow, cancelled); len(left) > 0 {
		t.Errorf("containers left behind: %v", left)
	}
}

// TestRunRemovesLeftovers: containers a killed run left (their owner's
// process gone, or its PID now another process's) are removed by the next
// Run; those of a live run, or of another host sharing the engine, stay.
func TestRunRemovesLeftovers(t *testing.T) { testenv.EachEngine(t, testRunRemovesLeftovers) }

func testRunRemovesLeftovers(t *testing.T) {
	e, id := base(t)
	ctx := context.Background()
	host, _ := os.Hostname()
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	ns = strings.TrimSuffix(strings.TrimPrefix(ns, "pid:["), "]")
	// A process's owner label, read as Run writes its own.
	label := func(pid int) string {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		return host + ":" + ns + ":" + strconv.Itoa(pid) + ":" + strings.Fields(s[strings.LastIndexByte(s, ')')+1:])[19]
	}
	dead := exec.Command("sleep", "600")
	if err := dead.Start(); err != nil {
		t.Fatal(err)
	}
	deadLabel := label(dead.Process.Pid)
	dead.Process.Kill()
	dead.Wait()
	live := exec.Command("sleep", "600")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { live.Process.Kill(); live.Wait() })
	me := label(os.Getpid())
	reused := me[:strings.LastIndexByte(me, ':')] + ":1" // this PID, another start

	owners := map[string]string{
		"dead": deadLabel, "reused": reused,
		"live": label(live.Process.Pid), "elsewhere": "another-host:" + ns + ":1:1",
		"another PID namespace": host + ":1:" + strconv.Itoa(dead.Process.Pid) + ":1",
	}
	ids := map[string]string{}
	for what, owner := range owners {
		c, err := e.API.ContainerCreate(ctx, &container.Config{
			Image: id, Cmd: []string{"sleep", "600"},
			Labels:          map[string]string{"io.hoist.test": testenv.Unique("left-" + strings.ReplaceAll(what, " ", "-") + "-"), ctest.LabelOwner: owner},
			NetworkDisabled: true,
		}, &container.HostConfig{NetworkMode: "none"}, nil, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		ids[what] = c.ID
		t.Cleanup(func() { e.API.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true}) })
	}
	// One left running, as a test the killed run was waiting on.
	if err := e.API.ContainerStart(ctx, ids["dead"], container.StartOptions{}); err != nil {
		t.Fatal(err)
	}

	name := testenv.Unique("after-")
	if _, err := ctest.Run(ctx, e.API, []ctest.Case{{Name: name, ImageID: id, Command: []string{"true"}}}, ctest.Options{LogDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	for what, want := range map[string]bool{"dead": false, "reused": false, "live": true, "elsewhere": true, "another PID namespace": true} {
		_, err := e.API.ContainerInspect(ctx, ids[what])
		if got := err == nil; got != want {
			t.Errorf("the container of a %s owner (%s): exists=%v, want %v (%v)", what, owners[what], got, want, err)
		}
	}
	if left := leftovers(t, e, name); len(left) > 0 {
		t.Errorf("Run left its own container: %v", left)
	}
}
