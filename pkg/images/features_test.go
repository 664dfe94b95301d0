package images

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/config"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/plan"
	"github.com/hoistci/hoist/pkg/version"
)

// repo is a repository of one or more images on a busybox base made here,
// built with the real engine's BuildKit.
type repo struct {
	t       *testing.T
	e       *engine.Engine
	b       *engine.Builder
	dir     string
	project string
	base    string
}

func newRepo(t *testing.T) *repo {
	t.Helper()
	e := testenv.Engine(t)
	r := &repo{t: t, e: e, b: testenv.Builder(t, e), dir: t.TempDir(), project: testenv.Unique("hoistfeat")}
	r.base = testenv.BusyboxBase(t, e)
	// The build folder is inside the context; its logs must not count.
	testenv.WriteFiles(t, r.dir, map[string]string{".dockerignore": "build\n"})
	return r
}

// write lays out files; {{base}} in a file stands for the busybox base.
func (r *repo) write(files map[string]string) {
	r.t.Helper()
	for k, v := range files {
		files[k] = strings.ReplaceAll(v, "{{base}}", r.base)
	}
	testenv.WriteFiles(r.t, r.dir, files)
}

// build loads hoist.yaml (project and build_dir are added) and builds.
func (r *repo) build(yaml string, o Options) (string, []Result, error) {
	r.t.Helper()
	cfg, err := config.Parse("hoist.yaml", r.dir, []byte("project: "+r.project+"\nbuild_dir: build\n"+yaml))
	if err != nil {
		r.t.Fatal(err)
	}
	v, _ := version.Parse("1.0.0")
	p, err := plan.Make(cfg, plan.Options{Version: v, Revision: "r1", Created: time.Unix(0, 0)})
	if err != nil {
		r.t.Fatal(err)
	}
	for _, img := range p.Images {
		ref := img.Ref
		r.t.Cleanup(func() { r.e.Remove(context.Background(), ref) })
	}
	var out bytes.Buffer
	o.Progress = &out
	if o.Parallel == 0 {
		o.Parallel = 2
	}
	res, err := Build(context.Background(), r.e, r.b, p, filepath.Join(r.dir, "build", "lock.json"), o)
	return out.String(), res, err
}

// log returns an image's build log.
func (r *repo) log(name string) string {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, "build", "logs", "build-"+name+".log"))
	if err != nil {
		r.t.Fatal(err)
	}
	return string(b)
}

// serve starts a loopback HTTP server for files, stopped at cleanup.
func serve(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, files)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir))}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String()
}

func oneLine(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one naming %q", want)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Fatalf("error is more than one line: %q", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Fatalf("error %q\ndoes not contain %q", msg, w)
		}
	}
}

func TestNetworkForRun(t *testing.T) {
	r := newRepo(t)
	url := serve(t, map[string]string{"pkg/data.txt": "payload-from-loopback\n"})
	r.write(map[string]string{
		"Dockerfile": "FROM {{base}}\nARG URL\nRUN wget -q -O /data.txt $URL/pkg/data.txt && grep -q payload-from-loopback /data.txt\n",
	})
	// host: RUN reaches a service on the machine's loopback.
	out, _, err := r.build(fmt.Sprintf("network: host\nimages:\n  - {name: fetch, dockerfile: Dockerfile, args: {URL: %q}}\n", url), Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	bridge, err := r.e.HasDefaultBridge(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// default: the engine's default network. This machine class runs the
	// engine with --bridge=none, where Hoist says what it uses instead; the
	// download then has no network, and the build says so in its log.
	out, _, err = r.build(fmt.Sprintf("images:\n  - {name: fetch, dockerfile: Dockerfile, args: {URL: %q}}\n", url), Options{})
	if bridge {
		if err == nil {
			t.Fatalf("RUN on the bridge reached the host's loopback\n%s", out)
		}
		return
	}
	if !strings.Contains(out, "no default bridge network") || strings.Count(out, "no default bridge network") != 1 {
		t.Fatalf("no one-line note about the missing bridge:\n%s", out)
	}
	if err == nil || strings.Contains(r.log("fetch"), "network bridge not found") {
		t.Fatalf("default network on a bridgeless engine: err = %v, want the build to run with none\n%s", err, r.log("fetch"))
	}
	// A RUN step that needs no network builds under default.
	r.write(map[string]string{"Dockerfile": "FROM {{base}}\nRUN echo offline > /x\n"})
	if out, _, err := r.build("images:\n  - {name: fetch, dockerfile: Dockerfile}\n", Options{}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

func TestSecretsNeverLeak(t *testing.T) {
	r := newRepo(t)
	envValue := testenv.Unique("env-secret-value-")
	fileValue := testenv.Unique("file-secret-value-")
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	r.write(map[string]string{
		"token.txt": fileValue,
		// The build checks each secret against its hash (a build argument
		// may be public), and keeps only that result.
		"Dockerfile": "FROM {{base}}\nARG ENV_SUM\nARG FILE_SUM\n" +
			"RUN --mount=type=secret,id=api_token,required sh -c 'sha256sum /run/secrets/api_token | grep -q $ENV_SUM && echo env-secret-ok > /ok1'\n" +
			"RUN --mount=type=secret,id=netrc,required sh -c 'sha256sum /run/secrets/netrc | grep -q $FILE_SUM && echo file-secret-ok > /ok2; cat /run/secrets/netrc > /dev/null'\n",
	})
	yaml := fmt.Sprintf(`secrets:
  api_token: {env: API_TOKEN}
  netrc: {file: token.txt}
images:
  - {name: sec, dockerfile: Dockerfile, args: {ENV_SUM: %s, FILE_SUM: %s}}
`, sum(envValue), sum(fileValue))
	o := Options{Secrets: map[string]Secret{
		"api_token": {Value: []byte(envValue), From: "environment variable API_TOKEN", Where: "hoist.yaml:2"},
		"netrc":     {File: filepath.Join(r.dir, "token.txt"), From: "file token.txt", Where: "hoist.yaml:3"},
	}}
	out, res, err := r.build(yaml, o)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// No trace of either value: the image's layers and config (docker
	// save), the build log, the lock and the inputs hash.
	rc, err := r.e.Save(context.Background(), res[0].Image.Ref)
	if err != nil {
		t.Fatal(err)
	}
	saved, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(saved, []byte("env-secret-ok")) || !bytes.Contains(saved, []byte("file-secret-ok")) {
		t.Fatal("the build did not see the secrets (its marker files are not in the image)")
	}
	lockBytes, _ := os.ReadFile(filepath.Join(r.dir, "build", "lock.json"))
	for what, hay := range map[string][]byte{
		"docker save": allLayers(t, saved), "build log": []byte(r.log("sec")), "progress": []byte(out),
		"lock": lockBytes, "inputs hash": []byte(res[0].Locked.InputsHash),
	} {
		for _, v := range []string{envValue, fileValue} {
			if bytes.Contains(hay, []byte(v)) {
				t.Errorf("the %s holds a secret value", what)
			}
		}
	}
	// The hash takes the secret's id, not its value: a new value alone
	// leaves the image unchanged.
	o.Secrets["api_token"] = Secret{Value: []byte("another"), From: "environment variable API_TOKEN"}
	if _, res2, err := r.build(yaml, o); err != nil || res2[0].State != Unchanged {
		t.Fatalf("state after a new secret value = %v (%v), want unchanged", res2[0].State, err)
	}
}

// allLayers is the saved tarball with every layer tarball inside it
// unpacked one level, so a value inside a file of a layer is found.
func allLayers(t *testing.T, saved []byte) []byte {
	t.Helper()
	var all bytes.Buffer
	all.Write(saved)
	tr := tar.NewReader(bytes.NewReader(saved))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		inner := tar.NewReader(bytes.NewReader(b))
		for {
			if _, err := inner.Next(); err != nil {
				break
			}
			c, _ := io.ReadAll(inner)
			all.Write(c)
		}
		_ = h
	}
	return all.Bytes()
}

func TestSecretBadInput(t *testing.T) {
	r := newRepo(t)
	r.write(map[string]string{
		"Dockerfile":  "FROM {{base}}\nRUN --mount=type=secret,id=npmrc,required cat /run/secrets/npmrc\n",
		"optional/Df": "FROM {{base}}\nRUN --mount=type=secret,id=npmrc true\n",
	})
	yaml := "images:\n  - {name: app, dockerfile: Dockerfile}\n"
	_, _, err := r.build(yaml, Options{})
	oneLine(t, err, "image app", "Dockerfile:2", `secret "npmrc", which hoist.yaml does not define`, "add secrets: {npmrc: {env: VARIABLE}}")
	_, _, err = r.build(yaml, Options{Secrets: map[string]Secret{"npmrc": {File: filepath.Join(r.dir, "nope"), Where: "hoist.yaml:3"}}})
	oneLine(t, err, "image app", "Dockerfile:2", "nope, which does not exist", "secrets.npmrc.file (hoist.yaml:3)")
	// A device would be read without end, and BuildKit takes no secret
	// over 500 KiB: both refused before the build starts.
	big := filepath.Join(r.dir, "big")
	if err := os.WriteFile(big, make([]byte, 600<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{"/dev/zero": "is a character device", big: "the limit for a secret file is 500 KiB"} {
		_, _, err = r.build(yaml, Options{Secrets: map[string]Secret{"npmrc": {File: file, Where: "hoist.yaml:3"}}})
		oneLine(t, err, "image app", "Dockerfile:2", want, "secrets.npmrc.file, hoist.yaml:3")
	}
	withheld := Secret{Withheld: "fork/PR mode gives builds no secrets: set pr: true", Where: "hoist.yaml:3"}
	_, _, err = r.build(yaml, Options{Secrets: map[string]Secret{"npmrc": withheld}})
	oneLine(t, err, "image app", "Dockerfile:2", "requires secret", "fork/PR mode")
	// An optional mount builds without a withheld secret, as BuildKit does.
	if out, _, err := r.build("images:\n  - {name: app, dockerfile: optional/Df, context: .}\n", Options{Secrets: map[string]Secret{"npmrc": withheld}}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

func TestSSHAgentForwarding(t *testing.T) {
	agentBin := testenv.Binary(t, "ssh-agent", "openssh-client")
	keygen := testenv.Binary(t, "ssh-keygen", "openssh-client")
	sshAdd := testenv.Binary(t, "ssh-add", "openssh-client")
	r := newRepo(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "agent.sock")
	key := filepath.Join(dir, "id_ed25519")
	run := func(env []string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	run(nil, keygen, "-q", "-t", "ed25519", "-N", "", "-C", "hoist-test-key", "-f", key)
	// Without -D the agent binds its socket before it forks, so the socket
	// exists once this returns; it prints the pid to stop it with.
	var pid int
	for _, f := range strings.FieldsFunc(run(nil, agentBin, "-s", "-a", sock), func(r rune) bool { return r == ';' || r == '\n' }) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(f), "SSH_AGENT_PID="); ok {
			pid, _ = strconv.Atoi(v)
		}
	}
	if pid == 0 {
		t.Fatal("ssh-agent printed no pid")
	}
	t.Cleanup(func() {
		if p, err := os.FindProcess(pid); err == nil {
			p.Kill()
		}
	})
	run([]string{"SSH_AUTH_SOCK=" + sock}, sshAdd, key)
	fp := strings.Fields(run(nil, keygen, "-l", "-f", key+".pub"))[1]

	// ssh-add with its libraries, on the busybox base.
	files := map[string]string{"Dockerfile": "FROM {{base}}\nCOPY root/ /\nARG FP\nARG ROUND\nRUN --mount=type=ssh,required sh -c '/usr/bin/ssh-add -l | tee /keys; grep -q \"$FP\" /keys'\n"}
	r.write(files)
	copyWithLibs(t, sshAdd, filepath.Join(r.dir, "root"))
	yaml := fmt.Sprintf("ssh:\n  default:\nimages:\n  - {name: ssh, dockerfile: Dockerfile, args: {FP: %q}}\n", fp)
	out, _, err := r.build(yaml, Options{SSH: map[string]SSH{"default": {Socket: sock, From: "SSH_AUTH_SOCK"}}})
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, out, r.log("ssh"))
	}
	if !strings.Contains(r.log("ssh"), fp) {
		t.Fatalf("ssh-add -l inside the build did not list %s:\n%s", fp, r.log("ssh"))
	}
	// Key files instead of an agent.
	yaml = fmt.Sprintf("images:\n  - {name: ssh, dockerfile: Dockerfile, args: {FP: %q, ROUND: '2'}}\n", fp)
	if out, _, err := r.build(yaml, Options{SSH: map[string]SSH{"default": {Keys: []string{key}}}}); err != nil {
		t.Fatalf("with key files: %v\n%s", err, out)
	}
	// Bad input: no agent configured, SSH_AUTH_SOCK unset, a socket that is gone.
	yaml = fmt.Sprintf("images:\n  - {name: ssh, dockerfile: Dockerfile, args: {FP: %q, ROUND: '3'}}\n", fp)
	_, _, err = r.build(yaml, Options{})
	oneLine(t, err, "image ssh", "Dockerfile:5", `SSH agent "default", which hoist.yaml does not define`, "add ssh: {default: }")
	_, _, err = r.build(yaml, Options{SSH: map[string]SSH{"default": {From: "SSH_AUTH_SOCK", Where: "hoist.yaml:2"}}})
	oneLine(t, err, "image ssh", "Dockerfile:5", "SSH_AUTH_SOCK is not set", "start ssh-agent")
	_, _, err = r.build(yaml, Options{SSH: map[string]SSH{"default": {Socket: filepath.Join(dir, "gone.sock"), From: "SSH_AUTH_SOCK", Where: "hoist.yaml:2"}}})
	oneLine(t, err, "image ssh", "Dockerfile:5", "gone.sock (SSH_AUTH_SOCK) does not exist", "start ssh-agent")
}

// copyWithLibs copies a dynamically linked program and the libraries ldd
// lists into root, at their own paths.
func copyWithLibs(t *testing.T, bin, root string) {
	t.Helper()
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", bin, err)
	}
	paths := []string{bin}
	for _, l := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(l) {
			if strings.HasPrefix(f, "/") {
				paths = append(paths, f)
			}
		}
	}
	for _, p := range paths {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(real)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func TestExternalImagesAndNamedContexts(t *testing.T) {
	r := newRepo(t)
	ctx := context.Background()
	tools := testenv.Unique("hoist-test/tools:")
	t.Cleanup(func() { r.e.Remove(ctx, tools) })
	makeTools := func(content string) {
		t.Helper()
		f := filepath.Join(t.TempDir(), "tool")
		os.WriteFile(f, []byte(content), 0o644)
		if _, err := r.e.ImportRootfs(ctx, tools, engine.Rootfs{Files: map[string]string{"/tool": f}}); err != nil {
			t.Fatal(err)
		}
	}
	makeTools("tool v1\n")
	r.write(map[string]string{
		// The syntax line many Dockerfiles carry asks for the frontend Hoist
		// runs itself; nothing is pulled.
		"app/Dockerfile":              "# syntax=docker/dockerfile:1\nFROM {{base}}\nCOPY --from=" + tools + " /tool /tool\nCOPY --from=lib / /lib/\nCOPY --from=extra /tool /extra\nCOPY . /src/\nRUN test ! -e /src/junk && test -e /src/keep && grep -q v /tool\n",
		"app/Dockerfile.dockerignore": "junk\n",
		"app/junk":                    "dropped by Dockerfile.dockerignore\n",
		"app/keep":                    "kept\n",
		"lib/a.txt":                   "lib\n",
	})
	yaml := fmt.Sprintf("images:\n  - {name: app, context: app, dockerfile: app/Dockerfile, contexts: {lib: lib, extra: 'docker-image://%s'}}\n", tools)
	build := func(want State) {
		t.Helper()
		out, res, err := r.build(yaml, Options{})
		if err != nil {
			t.Fatalf("%v\n%s\n%s", err, out, r.log("app"))
		}
		if res[0].State != want {
			t.Fatalf("state = %s, want %s\n%s", res[0].State, want, out)
		}
	}
	build(Built)
	build(Unchanged)
	// A new image behind COPY --from (and the docker-image:// context): rebuilt.
	makeTools("tool v2\n")
	build(Built)
	build(Unchanged)
	// A changed file in a folder context: rebuilt; in the ignored file: not.
	os.WriteFile(filepath.Join(r.dir, "lib", "a.txt"), []byte("lib 2\n"), 0o644)
	build(Built)
	os.WriteFile(filepath.Join(r.dir, "app", "junk"), []byte("still dropped\n"), 0o644)
	build(Unchanged)

	// Bad input: a context name the Dockerfile never uses, and a name the
	// Dockerfile uses that nothing defines.
	_, _, err := r.build(fmt.Sprintf("images:\n  - {name: app, context: app, dockerfile: app/Dockerfile, contexts: {libs: lib, lib: lib, extra: 'docker-image://%s'}}\n", tools), Options{})
	oneLine(t, err, "image app", `context "libs" in hoist.yaml is named by no FROM, COPY --from`, "fix the name")
	_, _, err = r.build(fmt.Sprintf("images:\n  - {name: app, context: app, dockerfile: app/Dockerfile, contexts: {extra: 'docker-image://%s'}}\n", tools), Options{})
	oneLine(t, err, "image app", "Dockerfile:4", "COPY --from lib names no stage, no context and no image", "contexts are extra")
}

func TestCacheMountReused(t *testing.T) {
	r := newRepo(t)
	id := testenv.Unique("hoist-cache-")
	r.write(map[string]string{
		"Dockerfile": "FROM {{base}}\nARG ROUND\nRUN --mount=type=cache,id=" + id + ",target=/cache sh -c 'if test -f /cache/stamp; then echo CACHE-REUSED; else echo CACHE-EMPTY; echo x > /cache/stamp; fi'\n",
	})
	yaml := "images:\n  - {name: cache, dockerfile: Dockerfile}\n"
	if out, _, err := r.build(yaml, Options{}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(r.log("cache"), "CACHE-EMPTY") {
		t.Fatalf("first build did not start with an empty cache mount:\n%s", r.log("cache"))
	}
	// A cold run of the step (a new argument before it) still finds what
	// the cache mount kept.
	if out, _, err := r.build("images:\n  - {name: cache, dockerfile: Dockerfile, args: {ROUND: '2'}}\n", Options{}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(r.log("cache"), "CACHE-REUSED") {
		t.Fatalf("second cold build did not reuse the cache mount:\n%s", r.log("cache"))
	}
}
