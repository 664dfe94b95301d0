// Package scantest makes what scan tests and benchmarks need on a machine
// that can neither pull images nor download Trivy's DB: FROM-scratch images
// that Trivy detects as Debian 12 with chosen dpkg packages, and a small
// vulnerability DB in Trivy's real format written by tools/trivy/trivydb.
package scantest

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/docker/docker/api/types/container"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/trivy"
)

// Advisory is one DB entry (see tools/trivy/trivydb).
type Advisory struct {
	Source     string   `json:"source"`              // e.g. "debian 12", "pip::GitHub Security Advisory pip"
	SourceID   string   `json:"source_id,omitempty"` // e.g. ghsa (default: Source's first word)
	Package    string   `json:"package"`
	ID         string   `json:"id"`
	Fixed      string   `json:"fixed,omitempty"`      // OS packages
	Vulnerable []string `json:"vulnerable,omitempty"` // language packages, e.g. ["<2.31.0"]
	Patched    []string `json:"patched,omitempty"`
	Severity   string   `json:"severity"`
}

var (
	makerOnce sync.Once
	makerPath string
	makerErr  error
)

// dbMaker builds tools/trivy/trivydb once per process, with the same flags
// as the pinned Trivy so the go build cache serves both.
func dbMaker(ctx context.Context, repoRoot string) (string, error) {
	makerOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hoist-trivydb-")
		if err != nil {
			makerErr = err
			return
		}
		makerPath = filepath.Join(dir, "trivydb")
		args := append([]string{"build"}, trivy.BuildFlags(trivy.Pinned)...)
		args = append(args, "-o", makerPath, "./trivydb")
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = filepath.Join(repoRoot, "tools", "trivy")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			makerErr = fmt.Errorf("building tools/trivy/trivydb: %v\n%s", err, out)
		}
	})
	return makerPath, makerErr
}

// WriteDB writes a vulnerability DB holding advisories into dir/db (so dir
// is a Trivy cache folder and dir/db an offline DB folder) and returns dir/db.
func WriteDB(ctx context.Context, repoRoot, dir string, advisories []Advisory) (string, error) {
	maker, err := dbMaker(ctx, repoRoot)
	if err != nil {
		return "", err
	}
	spec, err := json.Marshal(map[string]any{"advisories": advisories})
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	specPath := filepath.Join(dir, "spec.json")
	if err := os.WriteFile(specPath, spec, 0o644); err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, maker, "-spec", specPath, "-out", dir).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("trivydb: %v: %s", err, out)
	}
	return filepath.Join(dir, "db"), nil
}

// DebianImage imports a FROM-scratch image that Trivy detects as Debian 12
// with the given dpkg packages (name -> version) and extra files (path in
// the image -> content). It returns the image ID.
func DebianImage(ctx context.Context, e *engine.Engine, ref string, pkgs map[string]string, files map[string]string) (string, error) {
	dir, err := os.MkdirTemp("", "hoist-debian-rootfs-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	content := map[string]string{
		"/etc/debian_version": "12.2\n",
		"/etc/os-release": "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\n" +
			"VERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n",
		"/var/lib/dpkg/status": DpkgStatus(pkgs),
	}
	for p, c := range files {
		content[p] = c
	}
	r := engine.Rootfs{Files: map[string]string{}, Dirs: []string{"/tmp"}}
	i := 0
	for p, c := range content {
		host := filepath.Join(dir, fmt.Sprintf("f%d", i))
		i++
		if err := os.WriteFile(host, []byte(c), 0o644); err != nil {
			return "", err
		}
		r.Files[p] = host
	}
	return e.ImportRootfs(ctx, ref, r)
}

// DpkgStatus is a /var/lib/dpkg/status listing the packages (name -> version).
func DpkgStatus(pkgs map[string]string) string {
	names := make([]string, 0, len(pkgs))
	for n := range pkgs {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "Package: %s\nStatus: install ok installed\nPriority: optional\nSection: libs\nInstalled-Size: 100\nMaintainer: Debian <debian@example.invalid>\nArchitecture: amd64\nVersion: %s\nDescription: %s for tests\n\n", n, pkgs[n], n)
	}
	return b.String()
}

// AddLayer makes ref from base plus one layer holding files (path ->
// content), the way a Dockerfile's COPY on a shared base does: a container
// is created (never started), the files copied in, and it is committed.
func AddLayer(ctx context.Context, e *engine.Engine, base, ref string, files map[string]string) (string, error) {
	c, err := e.API.ContainerCreate(ctx, &container.Config{Image: base, Cmd: []string{"/bin/true"}}, &container.HostConfig{NetworkMode: "none"}, nil, nil, "")
	if err != nil {
		return "", fmt.Errorf("creating a container from %s: %w", base, err)
	}
	defer func() { _ = e.API.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true}) }()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(p, "/"), Mode: 0o644, Size: int64(len(files[p])), Typeflag: tar.TypeReg}); err != nil {
			return "", err
		}
		if _, err := io.WriteString(tw, files[p]); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := e.API.CopyToContainer(ctx, c.ID, "/", &buf, container.CopyToContainerOptions{}); err != nil {
		return "", fmt.Errorf("copying files into %s: %w", ref, err)
	}
	resp, err := e.API.ContainerCommit(ctx, c.ID, container.CommitOptions{Reference: ref})
	if err != nil {
		return "", fmt.Errorf("committing %s: %w", ref, err)
	}
	return resp.ID, nil
}
