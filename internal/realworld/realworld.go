// Package realworld lays out the three kinds of Dockerfile the public
// release write-ups build, reduced to what runs offline on this machine
// class: a multi-stage compile (a Go program built in a toolchain stage,
// shipped FROM scratch), a Python package pip-installed from a package
// index, and a Node app npm-installed from an npm-style tarball. The
// index and the tarball are served on 127.0.0.1; the Go, Python and Node
// bases are made from the host's own toolchains (no image can be pulled
// here), each once per content.
package realworld

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hoistci/hoist/pkg/engine"
)

// Bases are the local base images the Dockerfiles start from.
type Bases struct {
	Go, Python, Node string
}

// MakeBases imports the Go, Python and Node bases from the host's
// toolchains (skipping any the engine already has with the same content)
// and returns their references.
func MakeBases(ctx context.Context, e *engine.Engine) (Bases, error) {
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		return Bases{}, errors.New("busybox is not installed (apt-get install busybox-static)")
	}
	goroot, err := goRoot(ctx)
	if err != nil {
		return Bases{}, err
	}
	var b Bases
	for _, k := range []struct {
		ref  *string
		name string
		make func(engine.Rootfs) (engine.Rootfs, error)
	}{
		{&b.Go, "go", func(r engine.Rootfs) (engine.Rootfs, error) { return goBase(r, goroot) }},
		{&b.Python, "python", pythonBase},
		{&b.Node, "node", nodeBase},
	} {
		r, err := k.make(engine.BusyboxRootfs(busybox))
		if err != nil {
			return Bases{}, fmt.Errorf("making the %s base: %w", k.name, err)
		}
		sum, err := rootfsSum(r)
		if err != nil {
			return Bases{}, err
		}
		ref := "hoist-fixture/" + k.name + ":" + sum[:12]
		if _, err := e.Inspect(ctx, ref); err != nil {
			if !errors.Is(err, engine.ErrNotFound) {
				return Bases{}, err
			}
			if _, err := e.ImportRootfs(ctx, ref, r); err != nil {
				return Bases{}, fmt.Errorf("importing the %s base: %w", k.name, err)
			}
		}
		*k.ref = ref
	}
	return b, nil
}

func goRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOROOT").Output()
	if err != nil {
		return "", fmt.Errorf("finding the Go toolchain: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// goBase is the host's Go toolchain at /usr/local/go: the go command, the
// compiler, assembler and linker, and the standard library's sources.
func goBase(r engine.Rootfs, goroot string) (engine.Rootfs, error) {
	add := func(rel string, skip func(string, fs.DirEntry) bool) error {
		return addTree(r, filepath.Join(goroot, rel), "/usr/local/go/"+rel, skip)
	}
	for _, f := range []string{"VERSION", "go.env", "bin/go"} {
		r.Files["/usr/local/go/"+f] = filepath.Join(goroot, f)
	}
	for _, tool := range []string{"compile", "link", "asm", "buildid"} {
		p := filepath.Join(goroot, "pkg/tool/linux_amd64", tool)
		if _, err := os.Stat(p); err == nil {
			r.Files["/usr/local/go/pkg/tool/linux_amd64/"+tool] = p
		}
	}
	if err := add("pkg/include", nil); err != nil {
		return r, err
	}
	err := add("src", func(p string, d fs.DirEntry) bool {
		n := d.Name()
		return d.IsDir() && (n == "testdata" || n == "cmd" && filepath.Base(filepath.Dir(p)) == "src") ||
			!d.IsDir() && strings.HasSuffix(n, "_test.go")
	})
	r.Env = []string{"PATH=/usr/local/go/bin:/bin", "HOME=/root", "GOTOOLCHAIN=local", "CGO_ENABLED=0", "GOFLAGS=-trimpath"}
	r.Dirs = append(r.Dirs, "/root")
	return r, err
}

// pythonBase is Debian's python3.11 with its standard library and pip.
func pythonBase(r engine.Rootfs) (engine.Rootfs, error) {
	if err := withLibs(r, "/usr/bin/python3.11"); err != nil {
		return r, err
	}
	r.Links["/usr/bin/python3"] = "python3.11"
	err := addTree(r, "/usr/lib/python3.11", "/usr/lib/python3.11", func(p string, d fs.DirEntry) bool {
		// Debian marks its Python externally managed; an image's own
		// Python is not (python:3 images have no such file either).
		return d.Name() == "EXTERNALLY-MANAGED" || d.IsDir() && (d.Name() == "test" || d.Name() == "__pycache__")
	})
	if err != nil {
		return r, err
	}
	if err := addTree(r, "/usr/lib/python3/dist-packages/pip", "/usr/lib/python3/dist-packages/pip", func(_ string, d fs.DirEntry) bool {
		return d.IsDir() && d.Name() == "__pycache__"
	}); err != nil {
		return r, fmt.Errorf("%w (apt-get install python3-pip)", err)
	}
	r.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/root", "PIP_DISABLE_PIP_VERSION_CHECK=1", "PYTHONDONTWRITEBYTECODE=1"}
	r.Dirs = append(r.Dirs, "/root", "/usr/local/lib/python3.11/dist-packages")
	return r, nil
}

// nodeBase is the host's node with npm.
func nodeBase(r engine.Rootfs) (engine.Rootfs, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return r, errors.New("node is not installed")
	}
	if err := withLibs(r, node); err != nil {
		return r, err
	}
	r.Files["/usr/bin/node"] = r.Files[node]
	npm, err := filepath.EvalSymlinks(filepath.Join(filepath.Dir(node), "npm"))
	if err != nil {
		return r, fmt.Errorf("finding npm: %w", err)
	}
	npmDir := filepath.Dir(filepath.Dir(npm)) // …/node_modules/npm
	if err := addTree(r, npmDir, "/usr/lib/node_modules/npm", nil); err != nil {
		return r, err
	}
	r.Links["/usr/bin/npm"] = "../lib/node_modules/npm/bin/npm-cli.js"
	r.Links["/usr/bin/env"] = "/bin/busybox"
	r.Env = []string{"PATH=/usr/bin:/bin", "HOME=/root", "NPM_CONFIG_UPDATE_NOTIFIER=false", "NPM_CONFIG_AUDIT=false", "NPM_CONFIG_FUND=false"}
	r.Dirs = append(r.Dirs, "/root")
	return r, nil
}

// withLibs adds a program and the shared libraries ldd lists for it.
func withLibs(r engine.Rootfs, bin string) error {
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return fmt.Errorf("ldd %s: %w", bin, err)
	}
	r.Files[bin] = bin
	for _, l := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(l) {
			if strings.HasPrefix(f, "/") {
				real, err := filepath.EvalSymlinks(f)
				if err != nil {
					return err
				}
				r.Files[f] = real
			}
		}
	}
	return nil
}

// addTree adds the files and symlinks under host at in, less what skip drops.
func addTree(r engine.Rootfs, host, in string, skip func(string, fs.DirEntry) bool) error {
	return filepath.WalkDir(host, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if skip != nil && skip(p, d) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(host, p)
		dst := filepath.ToSlash(filepath.Join(in, rel))
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			r.Links[dst] = t
		case d.Type().IsRegular():
			r.Files[dst] = p
		}
		return nil
	})
}

// rootfsSum identifies a rootfs by its paths, sizes and times, cheaply.
func rootfsSum(r engine.Rootfs) (string, error) {
	h := sha256.New()
	keys := make([]string, 0, len(r.Files))
	for k := range r.Files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		st, err := os.Stat(r.Files[k])
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d %d %o\n", k, st.Size(), st.ModTime().UnixNano(), st.Mode())
	}
	links := make([]string, 0, len(r.Links))
	for k := range r.Links {
		links = append(links, k)
	}
	sort.Strings(links)
	for _, k := range links {
		fmt.Fprintf(h, "link %s %s\n", k, r.Links[k])
	}
	fmt.Fprintf(h, "%q %q\n", r.Dirs, r.Env)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Index serves a Python package index (PEP 503 simple API) and an
// npm-style tarball on 127.0.0.1.
type Index struct {
	URL string // http://127.0.0.1:PORT
	srv *http.Server
}

// Close stops the server.
func (i *Index) Close() error { return i.srv.Close() }

// Package names and what their code returns, for the images' tests.
const (
	PyPackage   = "hoist-demo"
	PyGreeting  = "hello from the package index"
	NodeTarball = "hoist-demo-lib-1.0.0.tgz"
	NodeGreet   = "hello from the npm tarball"
)

// ServeIndex writes the wheel, the simple index and the tarball under dir
// and serves dir on a free loopback port.
func ServeIndex(dir string) (*Index, error) {
	wheel, err := makeWheel()
	if err != nil {
		return nil, err
	}
	const wheelName = "hoist_demo-1.0.0-py3-none-any.whl"
	sum := sha256.Sum256(wheel)
	tgz, err := makeTarball()
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{
		"packages/" + wheelName: wheel,
		"simple/index.html":     []byte(`<!DOCTYPE html><html><body><a href="hoist-demo/">hoist-demo</a></body></html>` + "\n"),
		"simple/hoist-demo/index.html": []byte(fmt.Sprintf(`<!DOCTYPE html><html><body><a href="../../packages/%s#sha256=%x">%s</a></body></html>`+"\n",
			wheelName, sum, wheelName)),
		"npm/" + NodeTarball: tgz,
	}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return nil, err
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir))}
	go func() { _ = srv.Serve(l) }() // returns http.ErrServerClosed on Close
	return &Index{URL: "http://" + l.Addr().String(), srv: srv}, nil
}

// makeWheel builds a pure-Python wheel by hand: a zip with the module, its
// metadata and a RECORD of hashes, as pip expects.
func makeWheel() ([]byte, error) {
	files := []struct{ name, body string }{
		{"hoist_demo/__init__.py", fmt.Sprintf("def greet():\n    return %q\n", PyGreeting)},
		{"hoist_demo-1.0.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: hoist-demo\nVersion: 1.0.0\nSummary: demo package served by a loopback index\n"},
		{"hoist_demo-1.0.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: hoist-realworld\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	var record strings.Builder
	for _, f := range files {
		w, err := zw.Create(f.name)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write([]byte(f.body)); err != nil {
			return nil, err
		}
		s := sha256.Sum256([]byte(f.body))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", f.name, base64.RawURLEncoding.EncodeToString(s[:]), len(f.body))
	}
	record.WriteString("hoist_demo-1.0.0.dist-info/RECORD,,\n")
	w, err := zw.Create("hoist_demo-1.0.0.dist-info/RECORD")
	if err != nil {
		return nil, err
	}
	if _, err := w.Write([]byte(record.String())); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// makeTarball builds an npm package tarball: package/ with its manifest.
func makeTarball() ([]byte, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range []struct{ name, body string }{
		{"package/package.json", `{"name": "hoist-demo-lib", "version": "1.0.0", "main": "index.js"}` + "\n"},
		{"package/index.js", fmt.Sprintf("module.exports = () => %q;\n", NodeGreet)},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write([]byte(f.body)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Files returns the repository: the three Dockerfiles with their sources
// and a hoist.yaml (project, bases and index given) whose images carry
// the tests the Test target runs.
func Files(project string, b Bases, indexURL string) map[string]string {
	return map[string]string{
		"VERSION":       "1.0.0\n",
		".dockerignore": "build\n",
		// The semver write-up's server compiles its binary in a builder
		// stage and ships only the result.
		"compile/Dockerfile": fmt.Sprintf(`FROM %s AS build
WORKDIR /src
COPY go.mod main.go ./
RUN --mount=type=cache,target=/root/.cache/go-build go build -o /out/app .

FROM scratch
COPY --from=build /out/app /app
ENTRYPOINT ["/app"]
`, b.Go),
		"compile/go.mod":  "module example.com/app\n\ngo 1.21\n",
		"compile/main.go": "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() {\n\tif len(os.Args) > 1 && os.Args[1] == \"selftest\" {\n\t\tfmt.Println(\"compiled app ok\")\n\t\treturn\n\t}\n\tfmt.Println(\"hello\")\n}\n",
		// The matrix write-up pip-installs its package into every image.
		"pyapp/Dockerfile": fmt.Sprintf(`FROM %s
ARG INDEX_URL
RUN --mount=type=cache,target=/root/.cache/pip python3 -m pip install --index-url $INDEX_URL %s==1.0.0
COPY app.py /app/app.py
`, b.Python, PyPackage),
		"pyapp/app.py": "import hoist_demo\nprint(hoist_demo.greet())\n",
		// The staging/main write-up's apps install their npm dependencies.
		"nodeapp/Dockerfile": fmt.Sprintf(`FROM %s
WORKDIR /app
COPY package.json index.js ./
ARG LIB_URL
RUN --mount=type=cache,target=/root/.npm npm install --no-save $LIB_URL
`, b.Node),
		"nodeapp/package.json": `{"name": "app", "version": "1.0.0", "private": true}` + "\n",
		"nodeapp/index.js":     "const greet = require('hoist-demo-lib');\nconsole.log(greet());\n",
		"hoist.yaml": fmt.Sprintf(`project: %[1]s
images:
  - name: compile
    context: compile
    dockerfile: compile/Dockerfile
    test: {command: [/app, selftest]}
  - name: pyapp
    context: pyapp
    dockerfile: pyapp/Dockerfile
    network: host   # the package index listens on the machine's loopback
    args: {INDEX_URL: "%[2]s/simple/"}
    test: {command: [sh, -c, 'python3 /app/app.py | grep -qx "%[3]s"']}
  - name: nodeapp
    context: nodeapp
    dockerfile: nodeapp/Dockerfile
    network: host
    args: {LIB_URL: "%[2]s/npm/%[4]s"}
    test: {command: [sh, -c, 'node /app/index.js | grep -qx "%[5]s"']}
`, project, indexURL, PyGreeting, NodeTarball, NodeGreet),
	}
}
