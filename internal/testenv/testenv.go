// Package testenv gives tests the real components they need. A test that
// needs the Docker Engine skips with a message on a laptop without one, but
// fails when CI is set, so CI never passes on skipped work.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoistci/hoist/pkg/engine"
)

// InCI reports whether CI is set.
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "1" || v == "true" || v == "yes"
}

// Need skips the test with why, or fails it when running in CI.
func Need(t testing.TB, why string) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI is set, so this test may not skip: %s", why)
	}
	t.Skip(why)
}

var upMu sync.Mutex

// Engine returns a connection to the local Docker Engine. In CI it first
// brings one up (engine.Up) when none answers.
func Engine(t testing.TB) *engine.Engine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	upMu.Lock()
	e, err := engine.Up(ctx, engine.UpOptions{Setup: InCI(), Out: testWriter{t}})
	upMu.Unlock()
	if err != nil {
		Need(t, "needs a Docker Engine: "+err.Error())
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// testWriter logs each write through t.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Binary returns the path of a program on PATH, or skips (fails in CI).
func Binary(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Need(t, name+" is not installed (apt-get install "+pkg+")")
	}
	return p
}

// Unique returns a short random name with the given prefix, for images,
// containers and tags that must not collide with parallel tests.
func Unique(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// EnvModernEngine is the address (e.g. unix:///run/hoist-modern/docker.sock)
// of a modern engine, one keeping images in containerd's store, that the
// engine tests run against besides the classic one.
const EnvModernEngine = "HOIST_MODERN_ENGINE"

// Engine names of EachEngine's subtests.
const (
	Classic = "classic"
	Modern  = "modern"
)

var (
	modernOnce sync.Once
	modernAddr string
	modernErr  string
)

// modernEngine returns the modern engine's address: HOIST_MODERN_ENGINE, or
// in CI the one scripts/modern-engine-up.sh brings up (built once, cached).
func modernEngine() (string, string) {
	modernOnce.Do(func() {
		if modernAddr = os.Getenv(EnvModernEngine); modernAddr != "" {
			return
		}
		if !InCI() {
			modernErr = "no modern engine: set " + EnvModernEngine + "=$(sudo bash scripts/modern-engine-up.sh) to run this against the containerd image store too"
			return
		}
		var log strings.Builder
		addr, err := engine.UpModern(context.Background(), &log)
		if err != nil {
			modernErr = err.Error() + ": " + strings.TrimSpace(log.String())
			return
		}
		modernAddr = addr
	})
	return modernAddr, modernErr
}

// EachEngine runs f once per engine as a subtest named Classic or Modern,
// with DOCKER_HOST pointing at that engine, so Engine and the targets both
// find it. The classic engine is the one DOCKER_HOST (or the default
// socket) names; the modern one is HOIST_MODERN_ENGINE's. Without a modern
// engine its subtest skips, and in CI it fails instead.
func EachEngine(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	classic := os.Getenv("DOCKER_HOST")
	t.Run(Classic, func(t *testing.T) {
		t.Setenv("DOCKER_HOST", classic)
		f(t)
	})
	t.Run(Modern, func(t *testing.T) {
		addr, why := modernEngine()
		if addr == "" {
			Need(t, why)
		}
		t.Setenv("DOCKER_HOST", addr)
		f(t)
	})
}

// OnModern points DOCKER_HOST at the modern engine for a test about what
// only a containerd store holds (e.g. an image index with attestations);
// without one the test skips, and in CI fails.
func OnModern(t *testing.T) {
	t.Helper()
	addr, why := modernEngine()
	if addr == "" {
		Need(t, why)
	}
	t.Setenv("DOCKER_HOST", addr)
}

// RepoRoot returns the repository root (the folder holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// BusyboxBase imports a busybox base image (made from Debian's
// busybox-static, no pull) under a unique tag and returns the tag.
func BusyboxBase(t testing.TB, e *engine.Engine) string {
	t.Helper()
	bb := Binary(t, "busybox", "busybox-static")
	ref := Unique("hoist-test/busybox:")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.ImportRootfs(ctx, ref, engine.BusyboxRootfs(bb)); err != nil {
		t.Fatalf("making busybox base: %v", err)
	}
	t.Cleanup(func() { e.Remove(context.Background(), ref) })
	return ref
}

// GitEnv keeps the machine's git configuration out of tests that run real
// git, and gives their commits a fixed author.
var GitEnv = map[string]string{
	"GIT_CONFIG_GLOBAL":   os.DevNull,
	"GIT_CONFIG_NOSYSTEM": "1",
	"GIT_AUTHOR_NAME":     "hoist",
	"GIT_AUTHOR_EMAIL":    "hoist@example.invalid",
	"GIT_COMMITTER_NAME":  "hoist",
	"GIT_COMMITTER_EMAIL": "hoist@example.invalid",
}

// IsolateGit sets GitEnv in this process; call it from TestMain.
func IsolateGit() {
	for k, v := range GitEnv {
		if err := os.Setenv(k, v); err != nil {
			panic("setting " + k + ": " + err.Error())
		}
	}
}

// Git runs git in dir and returns its trimmed output, failing the test when
// git fails.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return strings.TrimSpace(string(out))
}

// WriteFiles writes each file (a path relative to dir, and its content)
// under dir, making folders as needed.
func WriteFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Builder returns a BuildKit client through e's own BuildKit, closed when
// the test ends.
func Builder(t testing.TB, e *engine.Engine) *engine.Builder {
	t.Helper()
	b, err := e.Builder(context.Background(), engine.Remote{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// Stdout runs fn with os.Stdout captured (targets print there) and returns
// what it printed with fn's error.
func Stdout(t testing.TB, fn func() error) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() { b, _ := io.ReadAll(r); done <- string(b) }()
	ferr := fn()
	os.Stdout = old
	w.Close()
	return <-done, ferr
}

// Arm64 makes sure e can run linux/arm64 containers: natively on an arm64
// engine, or under emulation through a binfmt_misc aarch64 handler with the
// F flag (scripts/engine-up.sh --for-tests registers Debian's
// qemu-user-static one). Otherwise it skips the test with one line, and in
// CI fails it.
func Arm64(t testing.TB, e *engine.Engine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	arch, err := e.Arch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if arch == "arm64" {
		return
	}
	if why := arm64Emulation("/proc/sys/fs/binfmt_misc/qemu-aarch64"); why != "" {
		Need(t, "arm64 cannot run on this "+arch+" engine: "+why+": run sudo bash scripts/engine-up.sh --for-tests")
	}
}

// arm64Emulation returns why the binfmt_misc handler at path cannot run
// arm64 binaries in containers, or "" when it can.
func arm64Emulation(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "no aarch64 handler is registered in binfmt_misc"
	}
	lines := strings.Split(string(b), "\n")
	if lines[0] != "enabled" {
		return "the aarch64 handler in binfmt_misc is disabled"
	}
	for _, l := range lines {
		if flags, ok := strings.CutPrefix(l, "flags: "); ok && strings.Contains(flags, "F") {
			return ""
		}
	}
	return "the aarch64 handler in binfmt_misc lacks the F flag, so containers cannot use it"
}

// Probe builds internal/testenv/probe, a static program that reports the
// machine it runs on, for each GOARCH into dir as probe-GOARCH (the name a
// Dockerfile's COPY probe-${TARGETARCH} finds).
func Probe(t testing.TB, dir string, goarchs ...string) {
	t.Helper()
	for _, arch := range goarchs {
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "probe-"+arch), "./internal/testenv/probe")
		cmd.Dir = RepoRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building the probe for %s: %v\n%s", arch, err, out)
		}
	}
}

// NoSecrets fails t when any of secrets appears in output or in a regular
// file under dir (files over 64 MiB are skipped): a test's check that a
// run printed and wrote no password, token or auth string.
func NoSecrets(t testing.TB, output, dir string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s == "" {
			t.Fatal("NoSecrets: an empty secret matches everything")
		}
		if strings.Contains(output, s) {
			t.Fatalf("a secret appears in the output:\n%s", output)
		}
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil || !info.Mode().IsRegular() || info.Size() > 64<<20 {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Errorf("a secret appears in %s", p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
