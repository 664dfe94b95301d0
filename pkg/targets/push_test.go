package targets

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/logs"

	"github.com/hoistci/hoist/internal/regtest"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/gate"
	"github.com/hoistci/hoist/pkg/localregistry"
	"github.com/hoistci/hoist/pkg/lock"
)

// capture collects everything written to stdout, stderr and
// go-containerregistry's loggers while fn runs.
func capture(t *testing.T, fn func()) (out string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = w, w
	var buf bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); io.Copy(&buf, r) }()
	oldWarn, oldProg, oldDebug := logs.Warn.Writer(), logs.Progress.Writer(), logs.Debug.Writer()
	logs.Warn.SetOutput(w)
	logs.Progress.SetOutput(w)
	logs.Debug.SetOutput(w) // verbose: request dumps too
	defer func() {
		logs.Warn.SetOutput(oldWarn)
		logs.Progress.SetOutput(oldProg)
		logs.Debug.SetOutput(oldDebug)
		os.Stdout, os.Stderr = oldOut, oldErr
		w.Close()
		wg.Wait()
		out = buf.String()
	}()
	fn()
	return ""
}

// project is a committed repository whose image "app" is built and tested
// by the Images and Test targets as version (HOIST_VERSION, which stays set),
// with the given registry section. It returns the folder and the project.
func project(t *testing.T, registryYAML, version string) (dir, proj string) {
	t.Helper()
	e := testenv.Engine(t)
	base := testenv.BusyboxBase(t, e)
	dir = t.TempDir()
	proj = testenv.Unique("hoisttest")
	for k, v := range testenv.GitEnv {
		t.Setenv(k, v)
	}
	testenv.WriteFiles(t, dir, map[string]string{
		"hoist.yaml": "project: " + proj + "\nbuild_dir: build\nregistry:\n" + registryYAML +
			"images:\n  - name: app\n    dockerfile: Dockerfile\n    test: {command: [sh, -c, \"grep -q hello /f\"]}\n",
		"Dockerfile": "FROM " + base + "\nCOPY f /f\n",
		"f":          "hello\n",
		"VERSION":    "2.3.4\n",
		".gitignore": "build/\n",
	})
	run(t, dir, "git", "init", "-q")
	run(t, dir, "git", "add", ".")
	run(t, dir, "git", "commit", "-q", "-m", "app")
	t.Setenv("HOIST_CONFIG", filepath.Join(dir, "hoist.yaml"))
	t.Setenv("HOIST_VERSION", version)
	t.Cleanup(func() { e.Remove(context.Background(), proj+"/app:"+version) })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var err error
	if out := capture(t, func() { err = Test(ctx) }); err != nil {
		t.Fatalf("building and testing app: %v\n%s", err, out)
	}
	return dir, proj
}

func TestRegistryTargetsNeverPrintThePassword(t *testing.T) {
	testenv.EachEngine(t, testRegistryTargetsNeverPrintThePassword)
}

func testRegistryTargetsNeverPrintThePassword(t *testing.T) {
	const user, secret = "ci", "Tr0ub4dor-and-3-hoist"
	reg := regtest.Distribution(t, user, secret)
	dir, _ := project(t, "  host: "+reg.Host+"\n  repository: org\n", "2.3.4-staging.1")
	t.Setenv("HOIST_PR", "")
	t.Setenv("GITHUB_EVENT_NAME", "")
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no docker login of this machine
	t.Setenv(envRegistryUser, user)

	var errs []error
	steps := []struct {
		name    string
		pass    string
		env     map[string]string
		run     func(context.Context) error
		wantErr string
	}{
		{name: "push with a wrong password", pass: secret + "-wrong", run: Push, wantErr: "401"},
		{name: "push", pass: secret, run: Push},
		{name: "gate", pass: secret, run: DigestGate},
		{name: "promote dry run", pass: secret, env: map[string]string{"HOIST_DRY_RUN": "1", "HOIST_VERSION": ""}, run: Promote},
		{name: "promote", pass: secret, env: map[string]string{"HOIST_VERSION": "", "HOIST_DRY_RUN": ""}, run: Promote},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out strings.Builder
	for _, st := range steps {
		t.Setenv(envRegistryPass, st.pass)
		for k, v := range st.env {
			t.Setenv(k, v)
		}
		var err error
		got := capture(t, func() { err = st.run(ctx) })
		if testing.Verbose() {
			t.Logf("%s: %d bytes of output, err %v", st.name, len(got), err)
		}
		out.WriteString(got)
		if err != nil {
			out.WriteString(err.Error())
			errs = append(errs, err)
		}
		switch {
		case st.wantErr == "" && err != nil:
			t.Fatalf("%s: %v", st.name, err)
		case st.wantErr != "" && (err == nil || !strings.Contains(err.Error(), st.wantErr)):
			t.Fatalf("%s: err = %v, want %q", st.name, err, st.wantErr)
		}
	}
	all := out.String()
	// Neither printed nor written: output, lock file, logs.
	testenv.NoSecrets(t, all, filepath.Join(dir, "build"), secret, base64.StdEncoding.EncodeToString([]byte(user+":"+secret)))
	if !strings.Contains(all, "HOIST_REGISTRY_PASSWORD") || !strings.Contains(all, "promote 2.3.4-staging.1 -> 2.3.4") || !strings.Contains(all, "dry run") {
		t.Errorf("output lacks the guidance or the plan:\n%s", all)
	}
	l, err := lock.Read(filepath.Join(dir, "build", "lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, p := range l.Images[0].Pushed {
		refs = append(refs, p.Ref[strings.LastIndexAny(p.Ref, ":@")+1:])
	}
	if got := strings.Join(refs, ","); !strings.HasSuffix(got, ",2.3.4-staging.1,staging,2.3.4,2.3,2,latest") || len(refs) != 7 {
		t.Errorf("lock records %s, want the digest, the staging tags and (promoted) the release tags", got)
	}
	if errors.Join(errs...) == nil {
		t.Error("no step failed: the wrong password was accepted")
	}
}

// With no registry configured, Push starts the checkout's own local
// registry (data under the build folder, port recorded there) and Promote
// reuses it: the main job runs on a machine with only Go and an engine.
// registry:status and registry:stop report and end it.
func TestNoRegistryConfiguredUsesALocalOne(t *testing.T) {
	testenv.EachEngine(t, testNoRegistryConfiguredUsesALocalOne)
}

func testNoRegistryConfiguredUsesALocalOne(t *testing.T) {
	dir, proj := project(t, "", "2.3.4-staging.0")
	regDir := filepath.Join(dir, "build", "registry")
	t.Cleanup(func() { localregistry.Stop(context.Background(), regDir) })
	t.Setenv("HOIST_PR", "")
	t.Setenv("GITHUB_EVENT_NAME", "")
	t.Setenv("HOIST_DRY_RUN", "")
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// In CI, no registry configured is refused (TestReleaseInCIWithoutRegistryRefuses).
	t.Setenv("CI", "true")
	t.Setenv("HOIST_VERSION", "2.3.4-staging.0")
	var err error
	capture(t, func() { err = Push(ctx) })
	if err == nil || !strings.Contains(err.Error(), "no registry is configured and this is a CI run") {
		t.Fatalf("push in CI with no registry: %v", err)
	}
	// Outside CI, this checkout's local registry is started.
	t.Setenv("CI", "")
	capture(t, func() { err = Push(ctx) })
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOIST_VERSION", "")
	capture(t, func() { err = Promote(ctx) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(regDir, "data", "blobs")); err != nil {
		t.Fatalf("no registry data under the build folder: %v", err)
	}
	port, err := os.ReadFile(filepath.Join(regDir, "port"))
	if err != nil {
		t.Fatalf("no port recorded: %v", err)
	}
	host := "127.0.0.1:" + strings.TrimSpace(string(port))
	l2, err := lock.Read(filepath.Join(dir, "build", "lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := host + "/" + proj + "/app:2.3.4-staging.0"
	found := false
	for _, p := range l2.Images[0].Pushed {
		found = found || p.Ref == want
	}
	if !found {
		t.Fatalf("lock records %+v, want %s", l2.Images[0].Pushed, want)
	}
	resp, err := http.Get("http://" + host + "/v2/" + proj + "/app/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, tag := range []string{"2.3.4-staging.0", "staging", "2.3.4", "2.3", "latest"} {
		if !strings.Contains(string(body), `"`+tag+`"`) {
			t.Errorf("local registry tags %s lack %s", body, tag)
		}
	}

	for _, step := range []struct {
		name   string
		target func(context.Context) error
		want   string
	}{
		{name: "status", target: Registry{}.Status, want: "local registry running at " + host},
		{name: "stop", target: Registry{}.Stop, want: "local registry stopped"},
		{name: "stop again", target: Registry{}.Stop, want: "local registry was not running"},
		{name: "status after stop", target: Registry{}.Status, want: "local registry not running"},
	} {
		out := capture(t, func() { err = step.target(ctx) })
		if err != nil || !strings.Contains(out, step.want) {
			t.Fatalf("%s: %v\n%s\nwant %q", step.name, err, out, step.want)
		}
	}
}

// The write-up's mode for separate test and push machines: DigestGate
// rebuilds from the build cache and compares with what was tested.
func TestDigestGateRebuildMode(t *testing.T) { testenv.EachEngine(t, testDigestGateRebuildMode) }

func testDigestGateRebuildMode(t *testing.T) {
	e := testenv.Engine(t)
	bb := testenv.Binary(t, "busybox", "busybox-static")
	git := testenv.Binary(t, "git", "git")
	dir := t.TempDir()
	proj := testenv.Unique("hoisttest")
	write := func(name, body string) {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("hoist.yaml", "project: "+proj+"\nbuild_dir: build\nbases:\n  - ref: "+proj+"/busybox:1\n    busybox: "+bb+
		"\nimages:\n  - name: app\n    context: ctx\n    template: app.tmpl\n    vars: {base: \""+proj+"/busybox:1\"}\n")
	write("app.tmpl", "FROM {{.base}}\nCOPY app.txt /app.txt\n")
	write("ctx/app.txt", "tested\n")
	write("VERSION", "1.0.0\n")
	write(".gitignore", "build/\n")
	for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", "x"}} {
		cmd := exec.Command(git, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	t.Cleanup(func() {
		e.Remove(context.Background(), proj+"/app:1.0.0")
		e.Remove(context.Background(), proj+"/busybox:1")
	})
	t.Setenv("HOIST_CONFIG", filepath.Join(dir, "hoist.yaml"))
	t.Setenv("HOIST_VERSION", "")
	t.Setenv("HOIST_PR", "")
	t.Setenv("GITHUB_EVENT_NAME", "")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var err error
	if out := capture(t, func() { err = Images(ctx) }); err != nil {
		t.Fatalf("Images: %v\n%s", err, out)
	}
	lockPath := filepath.Join(dir, "build", "lock.json")
	if err := lock.Update(lockPath, func(l *lock.Lock) error {
		for i := range l.Images {
			l.Images[i].Test = &lock.Test{Passed: true, ImageID: l.Images[i].ImageID}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOIST_GATE_REBUILD", "1")
	if out := capture(t, func() { err = DigestGate(ctx) }); err != nil || !strings.Contains(out, "rebuilt from cache are the tested ones") {
		t.Fatalf("rebuild gate on unchanged sources: %v\n%s", err, out)
	}
	// The push machine's cache or sources differ: the rebuild is refused.
	write("ctx/app.txt", "not what was tested\n")
	capture(t, func() { err = DigestGate(ctx) })
	var me *gate.MismatchError
	if !errors.As(err, &me) || len(me.Layers) != 1 {
		t.Fatalf("rebuild gate on changed sources = %v, want one layer named", err)
	}
}
