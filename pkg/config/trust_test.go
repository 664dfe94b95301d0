package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hoistci/hoist/pkg/readlimit"
)

// TestPathsStayInside: every path hoist.yaml names must resolve, after
// symlinks, inside the repository unless outside: lists its folder.
func TestPathsStayInside(t *testing.T) {
	shared := t.TempDir() // a folder beside the repository
	os.WriteFile(filepath.Join(shared, "Dockerfile"), []byte("FROM scratch\n"), 0o644)
	tests := []struct {
		name string
		yaml string
		link string // a symlink "link" in the repository pointing at shared
		want string // "" means accepted
	}{
		{name: "context up and out", yaml: "images:\n  - {name: a, dockerfile: Dockerfile, context: ../../../../etc}\n", want: `hoist.yaml:3: image "a": context ../../../../etc resolves to /etc, outside the repository`},
		{name: "context through a symlink", link: "link", yaml: "images:\n  - {name: a, dockerfile: Dockerfile, context: link}\n", want: `hoist.yaml:3: image "a": context link resolves to ` + shared},
		{name: "dockerfile through a symlink", link: "link", yaml: "images:\n  - {name: a, dockerfile: link/Dockerfile}\n", want: `image "a": dockerfile link/Dockerfile resolves to`},
		{name: "absolute dockerfile", yaml: "images:\n  - {name: a, dockerfile: " + filepath.Join(shared, "Dockerfile") + "}\n", want: "outside the repository"},
		{name: "named context", link: "link", yaml: "images:\n  - {name: a, dockerfile: Dockerfile, contexts: {src: link}}\n", want: `image "a": context "src" link resolves to`},
		{name: "axis file", link: "link", yaml: "images:\n  - name: a-{{.x}}\n    dockerfile: Dockerfile\n    matrix: {axes: {x: {file: link/Dockerfile}}}\n", want: `hoist.yaml:5: image "a-{{.x}}": axis "x": file link/Dockerfile resolves to`},
		{name: "build_dir that does not exist yet", yaml: "build_dir: ../../escape\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", want: "hoist.yaml:2: build_dir ../../escape resolves to"},
		{name: "version_file", link: "link", yaml: "version_file: link/Dockerfile\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", want: "hoist.yaml:2: version_file link/Dockerfile"},
		{name: "db_dir", yaml: "images:\n  - {name: a, dockerfile: Dockerfile}\nscan:\n  db_dir: /var/lib\n", want: "hoist.yaml:4: scan: db_dir /var/lib resolves to /var/lib"},
		{name: "cluster manifests", yaml: "images:\n  - {name: a, dockerfile: Dockerfile}\ncluster:\n  name: c\n  manifests: ../k8s\n", want: "hoist.yaml:4: cluster: manifests ../k8s"},
		{name: "cluster config", yaml: "images:\n  - {name: a, dockerfile: Dockerfile}\ncluster:\n  name: c\n  config: /etc/k3d.yaml\n", want: "cluster: config /etc/k3d.yaml"},
		{name: "outside allows the named folder", link: "link", yaml: "outside: [" + shared + "]\nimages:\n  - {name: a, dockerfile: link/Dockerfile, context: link}\nscan: {db_dir: " + shared + "}\n"},
		{name: "outside allows only that folder", link: "link", yaml: "outside: [" + shared + "]\nimages:\n  - {name: a, dockerfile: Dockerfile, context: ../../../../etc}\n", want: "context ../../../../etc resolves to /etc"},
		{name: "outside must name a folder", yaml: "outside: [../no-such-folder]\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", want: `hoist.yaml:2: outside: "../no-such-folder" is not a folder`},
		{name: "outside may not be the root", yaml: "outside: [/]\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", want: "outside: / would allow every path"},
		{name: "inside paths and symlinks within are fine", yaml: "build_dir: out/x\nimages:\n  - {name: a, dockerfile: ./sub/../Dockerfile, context: .}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := repo(t)
			if tt.link != "" {
				if err := os.Symlink(shared, filepath.Join(dir, tt.link)); err != nil {
					t.Fatal(err)
				}
			}
			os.Mkdir(filepath.Join(dir, "sub"), 0o755)
			// Sparse: a size over the limit without the disk space.
			if f, err := os.Create(filepath.Join(dir, "big.bin")); err != nil {
				t.Fatal(err)
			} else {
				f.Truncate(readlimit.BaseFile + 1)
				f.Close()
			}
			_, err := Parse("hoist.yaml", dir, []byte("project: d\n"+tt.yaml))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "docs/config.md") && !strings.Contains(err.Error(), "outside:") {
				t.Fatalf("want one line naming the fix, got %q", err)
			}
		})
	}
}

// TestLateFailuresCaughtAtLoad: a Dockerfile path that is a folder and a
// local registry port out of range are refused when the config loads.
func TestLateFailuresCaughtAtLoad(t *testing.T) {
	for _, tt := range []struct{ name, yaml, want string }{
		{name: "dockerfile is a folder", yaml: "images:\n  - {name: a, dockerfile: sub}\n", want: `hoist.yaml:3: image "a": Dockerfile sub is not a regular file: name the Dockerfile itself, e.g. sub/Dockerfile`},
		{name: "template is a folder", yaml: "images:\n  - {name: a, template: sub}\n", want: `template sub is not a regular file`},
		{name: "local_port too large", yaml: "images:\n  - {name: a, dockerfile: Dockerfile}\nregistry:\n  local_port: 70000\n", want: "hoist.yaml:4: registry local_port 70000 is not a TCP port: use 1-65535"},
		{name: "too many images", yaml: "images:\n" + strings.Repeat("  - {name: a, dockerfile: Dockerfile}\n", 4097), want: "hoist.yaml:2: 4097 images, over the limit of 4096 a plan may hold"},
		{name: "base host file is a device", yaml: "bases:\n  - {ref: 'd/b:1', files: {/bin/x: /dev/zero}}\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", want: "hoist.yaml:3: base d/b:1: host file /dev/zero is not a regular file"},
		{name: "busybox is a device", yaml: "bases:\n  - {ref: 'd/b:1', busybox: /dev/zero}\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", want: "busybox /dev/zero is not a regular file"},
		{name: "base host file too large", yaml: "bases:\n  - {ref: 'd/b:1', files: {/bin/x: big.bin}}\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", want: "hoist.yaml:3: base d/b:1: host file big.bin is over the limit of 1 GiB for a base's file: name a smaller file (docs/config.md)"},
		{name: "local_port negative", yaml: "images:\n  - {name: a, dockerfile: Dockerfile}\nregistry:\n  local_port: -1\n", want: "local_port -1 is not a TCP port"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := repo(t)
			os.Mkdir(filepath.Join(dir, "sub"), 0o755)
			// Sparse: a size over the limit without the disk space.
			if f, err := os.Create(filepath.Join(dir, "big.bin")); err != nil {
				t.Fatal(err)
			} else {
				f.Truncate(readlimit.BaseFile + 1)
				f.Close()
			}
			_, err := Parse("hoist.yaml", dir, []byte("project: d\n"+tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v\nwant one line containing %q", err, tt.want)
			}
		})
	}
}

// TestLoadBounded: hoist.yaml symlinked to /dev/zero, a FIFO or a file
// over the limit is refused in one line, without reading it whole.
func TestLoadBounded(t *testing.T) {
	dir := t.TempDir()
	zero := filepath.Join(dir, "zero.yaml")
	os.Symlink("/dev/zero", zero)
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.yaml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("project: d\nimages:\n")
	for {
		st, _ := f.Stat()
		if st.Size() > 50<<20 {
			break
		}
		f.WriteString(strings.Repeat("  - {name: a, dockerfile: Dockerfile}\n", 10000))
	}
	f.Close()
	for _, tt := range []struct {
		path string
		want error
		text string
	}{
		{zero, readlimit.ErrNotRegular, "is a character device"},
		{fifo, readlimit.ErrNotRegular, "is a FIFO"},
		{big, readlimit.ErrTooLarge, "the limit for a config is 1 MiB"},
	} {
		_, err := Load(tt.path)
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Load(%s) = %v, want one line wrapping %v with %q", filepath.Base(tt.path), err, tt.want, tt.text)
		}
	}
}

// TestRepositoryConfigLoads: Hoist's own hoist.yaml keeps to the path and
// size rules it ships.
func TestRepositoryConfigLoads(t *testing.T) {
	if _, err := Load(filepath.Join("..", "..", DefaultFile)); err != nil {
		t.Fatal(err)
	}
}

// TestParseBounded: Parse holds bytes from any source to the same limit
// as Load, before decoding them.
func TestParseBounded(t *testing.T) {
	data := []byte("project: d\nimages:\n" + strings.Repeat("  - {name: a, dockerfile: Dockerfile}\n", readlimit.Config/38+1))
	_, err := Parse("hoist.yaml", t.TempDir(), data)
	if err == nil || !strings.Contains(err.Error(), "hoist.yaml: ") || !strings.Contains(err.Error(), "over the limit of 1 MiB for a config") {
		t.Fatalf("err = %v", err)
	}
}

// TestBuilderChecked: a builder Hoist cannot reach safely is refused at
// load, in one line naming hoist.yaml's line and the fix.
func TestBuilderChecked(t *testing.T) {
	for _, tt := range []struct{ name, yaml, want string }{
		{"partial TLS", "builder:\n  host: tcp://b.example:1234\n  ca: ca.pem\n", "hoist.yaml:2: builder: set ca, cert and key together (mutual TLS), or none of them"},
		{"plain TCP elsewhere", "builder:\n  host: tcp://b.example:1234\n", "plain TCP to another machine"},
		{"no port", "builder:\n  host: tcp://127.0.0.1\n", "has no port"},
		{"unix with TLS", "builder:\n  host: unix:///run/buildkit/buildkitd.sock\n  ca: a\n  cert: b\n  key: c\n", "TLS files apply to tcp:// only"},
		{"other scheme", "builder:\n  host: ssh://me@b.example\n", "scheme ssh is not supported"},
		{"TLS without host", "builder:\n  ca: a\n  cert: b\n  key: c\n", "TLS settings without host"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("hoist.yaml", repo(t), []byte("project: d\n"+tt.yaml+"images:\n  - {name: a, dockerfile: Dockerfile}\n"))
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v\nwant one line containing %q", err, tt.want)
			}
		})
	}
	for _, ok := range []string{"builder:\n  host: tcp://127.0.0.1:1234\n", "builder:\n  host: tcp://b.example:1234\n  ca: a\n  cert: b\n  key: c\n", "builder:\n  host: unix:///run/buildkit/buildkitd.sock\n"} {
		if _, err := Parse("hoist.yaml", repo(t), []byte("project: d\n"+ok+"images:\n  - {name: a, dockerfile: Dockerfile}\n")); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
}

// TestPinsChecked: a GitOps target Hoist could not commit to is refused at
// load, and a kustomization outside the repository like any other path.
func TestPinsChecked(t *testing.T) {
	for _, tt := range []struct{ name, yaml, want string }{
		{"remote without branch", "pins:\n  commit_to: {remote: ../gitops.git}\n", "hoist.yaml:2: pins: commit_to needs remote and branch"},
		{"path leaves the branch", "pins:\n  commit_to: {remote: ../gitops.git, branch: main, path: ../x}\n", "must be a folder inside the branch"},
		{"kustomization outside", "pins:\n  kustomization: ../elsewhere/kustomization.yaml\n", "pins: kustomization"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("hoist.yaml", repo(t), []byte("project: d\n"+tt.yaml+"images:\n  - {name: a, dockerfile: Dockerfile}\n"))
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v\nwant one line containing %q", err, tt.want)
			}
		})
	}
}
