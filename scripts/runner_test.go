package scripts_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hoistci/hoist/internal/testenv"
)

// asRoot runs a command as root: directly when this test is root, through
// sudo -n otherwise (a GitHub runner's user).
func asRoot(t *testing.T, args ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		args = append([]string{"sudo", "-n", "--"}, args...)
	}
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func canRoot() bool {
	return os.Geteuid() == 0 || exec.Command("sudo", "-n", "true").Run() == nil
}

// runnerUser creates a throw-away user in the engine socket's group, the
// way a GitHub runner's user is in the docker group, and removes it after.
func runnerUser(t *testing.T) (name, home string) {
	t.Helper()
	if !canRoot() {
		testenv.Need(t, "creating a throw-away user needs root or passwordless sudo")
	}
	testenv.Binary(t, "sudo", "sudo")
	var st syscall.Stat_t
	if err := syscall.Stat("/var/run/docker.sock", &st); err != nil {
		testenv.Need(t, "needs the engine's socket at /var/run/docker.sock: "+err.Error())
	}
	grp, err := user.LookupGroupId(fmt.Sprint(st.Gid))
	if err != nil {
		t.Fatalf("the engine socket's group %d: %v", st.Gid, err)
	}
	name = testenv.Unique("hoistrun")
	home, err = os.MkdirTemp("", "hoist-runner-home-")
	if err != nil {
		t.Fatal(err)
	}
	asRoot(t, "useradd", "--no-create-home", "--home-dir", home, "--shell", "/bin/bash", "--groups", grp.Name, name)
	t.Cleanup(func() {
		_ = exec.Command("sudo", "-n", "userdel", name).Run()
		_ = exec.Command("userdel", name).Run()
		_ = exec.Command("sudo", "-n", "rm", "-rf", home, "/etc/sudoers.d/"+name).Run()
		_ = os.RemoveAll(home)
	})
	asRoot(t, "chown", name, home)
	return name, home
}

// asUser runs a command as name with exactly env (plus HOME and USER), the
// way a fresh login shell on a runner would, and returns its output.
func asUser(ctx context.Context, name, home, dir string, env []string, args ...string) (string, error) {
	cmdArgs := []string{"-n", "-u", name, "--", "env", "-i", "HOME=" + home, "USER=" + name}
	cmdArgs = append(cmdArgs, env...)
	cmdArgs = append(cmdArgs, args...)
	cmd := exec.CommandContext(ctx, "sudo", cmdArgs...)
	if os.Geteuid() != 0 {
		cmd = exec.CommandContext(ctx, "sudo", append([]string{"-n", "--", "sudo"}, cmdArgs...)...)
	}
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// TestGitHubRunner reproduces a GitHub-hosted runner on this machine: a
// user that is not root but has passwordless sudo, a Docker Engine already
// running, and Debian's package database saying docker.io, containerd and
// the rest are not installed (a runner has Docker CE and containerd.io).
// It runs .ci/run's first step (engine-up.sh --for-tests) and then the
// target .ci/run calls, Test, as that user against the running engine.
//
// Test runs with HOIST_SKIP_CHECKS=1: its static checks are this
// repository's whole `go test ./...` (this test among them), golangci-lint
// and actionlint, which other tests and the Test target of CI cover; what
// differs on a runner is the engine bring-up, the host tools and running
// Images and the container tests as a user in the docker group, and those
// all run here. The mage binary is compiled first by this test's user, so
// the throw-away user's cold Go cache only compiles the demo base's program.
func TestGitHubRunner(t *testing.T) {
	testenv.Engine(t)
	ctx := context.Background()
	name, home := runnerUser(t)
	root := testenv.RepoRoot(t)

	// A fake of dpkg-query answering "not installed" for everything, as on
	// a runner, where Docker CE and containerd.io are not Debian's packages.
	shim := filepath.Join(home, "shim")
	testenv.WriteFiles(t, shim, map[string]string{
		"dpkg-query": "#!/bin/sh\necho \"dpkg-query: no packages found matching $*\" >&2\nexit 1\n",
	})
	os.Chmod(filepath.Join(shim, "dpkg-query"), 0o755)
	goBin := filepath.Dir(mustLookPath(t, "go"))
	path := "PATH=" + shim + ":" + goBin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

	// A copy of this repository whose image names are unique to this run,
	// and its targets compiled (by this test's user, whose Go cache is warm).
	work := filepath.Join(home, "repo")
	copyRepo(t, root, work)
	project := testenv.Unique("hoistrunner")
	edit(t, filepath.Join(work, "hoist.yaml"), func(s string) string {
		s = strings.Replace(s, "project: hoist\n", "project: "+project+"\n", 1)
		s = strings.ReplaceAll(s, "hoist/base:local", project+"/base:local")
		// The in-cluster stage is the cluster job's; a runner's engine is
		// what this test is about.
		if i := strings.Index(s, "\ncluster:"); i >= 0 {
			s = s[:i+1]
		}
		return s
	})
	edit(t, filepath.Join(work, "infra/docker/toolbox/Dockerfile"), func(s string) string {
		return strings.ReplaceAll(s, "hoist/base:local", project+"/base:local")
	})
	e := testenv.Engine(t)
	t.Cleanup(func() {
		list, _ := exec.Command("docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference="+project+"/*").Output()
		for _, ref := range strings.Fields(string(list)) {
			e.Remove(context.Background(), ref)
		}
	})
	mage := filepath.Join(home, "hoist-mage")
	compile := exec.Command("go", "run", "mage.go", "-compile", mage)
	compile.Dir = work
	if b, err := compile.CombinedOutput(); err != nil {
		t.Fatalf("compiling the targets: %v\n%s", err, b)
	}
	asRoot(t, "chown", "-R", name, home)

	// No sudo yet and no engine at DOCKER_HOST: one line saying what to install.
	out, err := asUser(ctx, name, home, work, []string{path, "DOCKER_HOST=unix://" + filepath.Join(home, "none.sock")},
		"bash", filepath.Join(work, "scripts", "engine-up.sh"))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err == nil || len(lines) != 1 || !strings.Contains(out, "not root, no sudo") || !strings.Contains(out, "install Docker Engine") {
		t.Fatalf("no engine, no sudo: want one failing line saying what to install, got %v:\n%s", err, out)
	}
	// The same through a target: its own line, then the reason as the error.
	out, err = asUser(ctx, name, home, work, []string{path, "DOCKER_HOST=unix://" + filepath.Join(home, "none.sock")}, mage, "images")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if err == nil || len(lines) != 2 || !strings.HasPrefix(lines[1], "Error: no Docker Engine answers") || !strings.Contains(lines[1], "install Docker Engine") {
		t.Fatalf("a target with no engine and no sudo: want its line and one error line saying what to install, got %v:\n%s", err, out)
	}

	asRoot(t, "sh", "-c", fmt.Sprintf("echo '%s ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/%s && chmod 0440 /etc/sudoers.d/%s", name, name, name))

	// The engine answers: nothing engine-related is installed or started,
	// and the host tools are found on PATH whatever dpkg says.
	out, err = asUser(ctx, name, home, work, []string{path}, "bash", filepath.Join(work, "scripts", "engine-up.sh"), "--for-tests")
	if err != nil || strings.Contains(out, "installing") || strings.Contains(out, "starting") {
		t.Fatalf("engine-up.sh --for-tests on a runner: %v\n%s", err, out)
	}

	// A tool missing from PATH is installed with sudo: a busybox that is not
	// static stands in for none (apt-get finds busybox-static installed
	// already, so this machine is left as it was).
	testenv.WriteFiles(t, shim, map[string]string{"busybox": ""})
	os.Remove(filepath.Join(shim, "busybox"))
	if err := os.Symlink(mustLookPath(t, "bash"), filepath.Join(shim, "busybox")); err != nil {
		t.Fatal(err)
	}
	out, err = asUser(ctx, name, home, work, []string{path}, "bash", filepath.Join(work, "scripts", "engine-up.sh"), "--for-tests")
	if err != nil || !strings.Contains(out, "installing busybox-static with apt-get") {
		t.Fatalf("engine-up.sh did not install a missing tool with sudo: %v\n%s", err, out)
	}
	os.Remove(filepath.Join(shim, "busybox"))

	// The Test target, as the runner's user, in the copy of this repository.
	out, err = asUser(ctx, name, home, work, []string{path, "CI=true", "HOIST_SKIP_CHECKS=1"}, mage, "test")
	t.Log(out)
	if err != nil {
		t.Fatalf("the Test target as the runner's user: %v", err)
	}
	// 14 matrix images and the toolbox on linux/amd64 and linux/arm64.
	if !strings.Contains(out, "test: 16 passed, 0 failed") {
		t.Errorf("want all 16 container tests passed")
	}
}

func mustLookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// copyRepo copies the files git knows of (tracked and new, not ignored).
func copyRepo(t *testing.T, from, to string) {
	t.Helper()
	list, err := exec.Command("git", "-C", from, "ls-files", "-co", "--exclude-standard", "-z").Output()
	if err != nil {
		t.Fatalf("listing the repository's files: %v", err)
	}
	for _, f := range strings.Split(strings.TrimRight(string(list), "\x00"), "\x00") {
		src := filepath.Join(from, f)
		st, err := os.Lstat(src)
		if err != nil || !st.Mode().IsRegular() {
			continue // deleted in the work tree, or not a plain file
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(to, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, st.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}

func edit(t *testing.T, p string, fn func(string) string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(fn(string(b))), 0o644); err != nil {
		t.Fatal(err)
	}
}
