package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// repo makes a folder with a Dockerfile, a template and a PYTHON_VERSIONS.
func repo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"Dockerfile":      "FROM scratch\n",
		"demo.tmpl":       "FROM {{.base}}\n",
		"PYTHON_VERSIONS": "3.11\n3.12\n",
		"busybox":         "binary",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const good = `project: demo
bases:
  - ref: demo/busybox:1
    busybox: busybox
images:
  - name: app
    dockerfile: Dockerfile
    test:
      command: [sh, -c, "true"]
  - name: py-{{.runtime}}-{{.python}}
    template: demo.tmpl
    vars: {base: demo/busybox:1}
    matrix:
      axes:
        runtime: [cpu, cuda]
        python: {file: PYTHON_VERSIONS}
      exclude:
        - {runtime: cuda, python: "3.11"}
scan:
  severity: [CRITICAL]
  ignore:
    - {id: CVE-2024-0001, reason: not reachable, expires: 2027-01-31}
`

func TestParseGood(t *testing.T) {
	dir := repo(t)
	c, err := Parse("hoist.yaml", dir, []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Project != "demo" || len(c.Images) != 2 || c.BuildDir != "build/hoist" || c.VersionFile != "VERSION" {
		t.Fatalf("unexpected config: %+v", c)
	}
	m := c.Images[1].Matrix
	if len(m.Axes) != 2 || m.Axes[0].Name != "runtime" || m.Axes[1].File != "PYTHON_VERSIONS" {
		t.Fatalf("axes not read in file order: %+v", m.Axes)
	}
	if c.Images[0].Line != 6 || c.Images[1].Line != 10 {
		t.Fatalf("image lines = %d, %d; want 6, 10", c.Images[0].Line, c.Images[1].Line)
	}
	if got := c.Scan.Severity; len(got) != 1 || got[0] != "CRITICAL" {
		t.Fatalf("severity = %v", got)
	}
	if c.Scan.Ignore[0].Line != 22 {
		t.Fatalf("ignore line = %d", c.Scan.Ignore[0].Line)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string // substring of the one-line error
	}{
		{name: "unknown top key", yaml: "project: d\nimagez: []\n", want: `hoist.yaml:2: unknown key "imagez" in the top level`},
		{name: "unknown image key", yaml: "project: d\nimages:\n  - name: a\n    dockerfle: Dockerfile\n", want: `hoist.yaml:4: unknown key "dockerfle" in a image section`},
		{name: "wrong type", yaml: "project: d\nparallel: many\nimages: []\n", want: "hoist.yaml:2: wrong type:"},
		{name: "duplicate name", yaml: "project: d\nimages:\n  - {name: a, dockerfile: Dockerfile}\n  - {name: a, dockerfile: Dockerfile}\n", want: `hoist.yaml:4: duplicate image name "a" (first at line 3)`},
		{name: "missing dockerfile", yaml: "project: d\nimages:\n  - {name: a, dockerfile: nope/Dockerfile}\n", want: "hoist.yaml:3: image \"a\": Dockerfile nope/Dockerfile does not exist"},
		{name: "missing template", yaml: "project: d\nimages:\n  - {name: a, template: nope.tmpl}\n", want: "template nope.tmpl does not exist"},
		{name: "both", yaml: "project: d\nimages:\n  - {name: a, template: demo.tmpl, dockerfile: Dockerfile}\n", want: "set dockerfile or template, not both"},
		{name: "neither", yaml: "project: d\nimages:\n  - {name: a}\n", want: "set dockerfile (a path) or template"},
		{name: "empty axis", yaml: "project: d\nimages:\n  - name: a-{{.x}}\n    dockerfile: Dockerfile\n    matrix:\n      axes:\n        x: []\n", want: `hoist.yaml:7: image "a-{{.x}}": axis "x" is empty`},
		{name: "axis file missing", yaml: "project: d\nimages:\n  - name: a-{{.x}}\n    dockerfile: Dockerfile\n    matrix:\n      axes:\n        x: {file: NOPE}\n", want: "reads NOPE, which does not exist"},
		{name: "axis bad shape", yaml: "project: d\nimages:\n  - name: a-{{.x}}\n    dockerfile: Dockerfile\n    matrix:\n      axes:\n        x: 3\n", want: `hoist.yaml:7: axis "x": write a list of values or {file: PATH}`},
		{name: "matrix unknown key", yaml: "project: d\nimages:\n  - name: a-{{.x}}\n    dockerfile: Dockerfile\n    matrix:\n      axis: {x: [1]}\n", want: `hoist.yaml:6: unknown key "axis" in a matrix section`},
		{name: "no project", yaml: "images:\n  - {name: a, dockerfile: Dockerfile}\n", want: "project is missing"},
		{name: "bad project", yaml: "project: My App\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", want: "not a valid image path component"},
		{name: "no images", yaml: "project: d\n", want: "no images"},
		{name: "empty file", yaml: "", want: "empty config"},
		{name: "not a mapping", yaml: "- a\n", want: "must be a mapping"},
		{name: "bad yaml", yaml: "project: [d\n", want: "hoist.yaml:"},
		{name: "template name without matrix", yaml: "project: d\nimages:\n  - {name: 'a-{{.x}}', dockerfile: Dockerfile}\n", want: "has no matrix"},
		{name: "bad test network", yaml: "project: d\nimages:\n  - name: a\n    dockerfile: Dockerfile\n    test: {command: [x], network: bridge}\n", want: `test network "bridge": use none or host`},
		{name: "test without command", yaml: "project: d\nimages:\n  - name: a\n    dockerfile: Dockerfile\n    test: {network: none}\n", want: "test has no command"},
		{name: "bad severity", yaml: "project: d\nimages:\n  - {name: a, dockerfile: Dockerfile}\nscan:\n  severity: [SEVERE]\n", want: `hoist.yaml:4: scan severity "SEVERE"`},
		{name: "ignore without reason", yaml: "project: d\nimages:\n  - {name: a, dockerfile: Dockerfile}\nscan:\n  ignore:\n    - {id: CVE-1}\n", want: "hoist.yaml:6: a scan ignore entry needs an id and a reason"},
		{name: "bad sbom format", yaml: "project: d\nimages:\n  - {name: a, dockerfile: Dockerfile}\nattest:\n  sbom: xml\n", want: `hoist.yaml:4: attest sbom "xml": use cyclonedx, spdx-json or none`},
		{name: "unknown attestation", yaml: "project: d\nimages:\n  - {name: a, dockerfile: Dockerfile}\nattest:\n  require: [vex]\n", want: `hoist.yaml:4: attest require "vex"`},
		{name: "sbom required but none made", yaml: "project: d\nimages:\n  - {name: a, dockerfile: Dockerfile}\nattest:\n  sbom: none\n  require: [sbom]\n", want: "attest require lists sbom but attest sbom is none"},
		{name: "keyless without identity", yaml: "project: d\nimages:\n  - {name: a, dockerfile: Dockerfile}\nattest:\n  keyless: {issuer: https://token.actions.githubusercontent.com}\n", want: `hoist.yaml:4: attest keyless identity "": write the workflow identity`},
		{name: "keyless bad issuer", yaml: "project: d\nimages:\n  - {name: a, dockerfile: Dockerfile}\nattest:\n  keyless: {issuer: token.actions, identity: 'https://github.com/o/r/.github/workflows/ci.yml@refs/heads/main'}\n", want: `attest keyless issuer "token.actions": write the OIDC issuer's URL`},
		{name: "keyless bad fulcio", yaml: "project: d\nimages:\n  - {name: a, dockerfile: Dockerfile}\nattest:\n  keyless: {issuer: 'https://token.actions.githubusercontent.com', identity: 'https://github.com/o/r/.github/workflows/ci.yml@refs/heads/main', fulcio: 'fulcio:5555'}\n", want: `attest keyless fulcio "fulcio:5555": write the Fulcio URL`},
		{name: "keyless bad identity regexp", yaml: "project: d\nimages:\n  - {name: a, dockerfile: Dockerfile}\nattest:\n  keyless: {issuer: 'https://token.actions.githubusercontent.com', identity_regexp: 'https://github.com/o/r/(['}\n", want: `attest keyless identity_regexp "https://github.com/o/r/(["`},
		{name: "keyless identity twice", yaml: "project: d\nimages:\n  - {name: a, dockerfile: Dockerfile}\nattest:\n  keyless: {issuer: 'https://token.actions.githubusercontent.com', identity: 'https://github.com/o/r/.github/workflows/ci.yml@refs/heads/main', identity_regexp: 'x'}\n", want: "sets both identity and identity_regexp"},
		{name: "keyless and a key", yaml: "project: d\nimages:\n  - {name: a, dockerfile: Dockerfile}\nattest:\n  public_key: cosign.pub\n  keyless: {issuer: 'https://token.actions.githubusercontent.com', identity: 'https://github.com/o/r/.github/workflows/ci.yml@refs/heads/main'}\n", want: "attest sets both public_key and keyless"},
		{name: "keyless root outside", yaml: "project: d\nimages:\n  - {name: a, dockerfile: Dockerfile}\nattest:\n  keyless: {issuer: 'https://token.actions.githubusercontent.com', identity: 'https://github.com/o/r/.github/workflows/ci.yml@refs/heads/main', root: ../fulcio.pem}\n", want: "attest: keyless: root"},
		{name: "ignore bad date", yaml: "project: d\nimages:\n  - {name: a, dockerfile: Dockerfile}\nscan:\n  ignore:\n    - {id: CVE-1, reason: r, expires: soon}\n", want: `expires "soon" is not a date`},
		{name: "base without files", yaml: "project: d\nbases:\n  - ref: d/b:1\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", want: "hoist.yaml:3: base d/b:1 has no files"},
		{name: "base host file missing", yaml: "project: d\nbases:\n  - {ref: 'd/b:1', busybox: /no/busybox}\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", want: "apt-get install busybox-static"},
		{name: "bad network", yaml: "project: d\nnetwork: bridge\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", want: `hoist.yaml:1: network: "bridge": use default`},
		{name: "bad image network", yaml: "project: d\nimages:\n  - {name: a, dockerfile: Dockerfile, network: nat}\n", want: `hoist.yaml:3: image "a": network: "nat"`},
		{name: "secret with both sources", yaml: "project: d\nsecrets:\n  npmrc: {env: NPMRC, file: .npmrc}\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", want: `hoist.yaml:3: secret "npmrc": set env`},
		{name: "secret with no source", yaml: "project: d\nsecrets:\n  npmrc:\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", want: `hoist.yaml:3: secret "npmrc": set env`},
		{name: "secret unknown key", yaml: "project: d\nsecrets:\n  npmrc: {envv: X}\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", want: `hoist.yaml:3: unknown key "envv" in a secret section`},
		{name: "ssh key missing", yaml: "project: d\nssh:\n  github: {keys: [nope/id_ed25519]}\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", want: `hoist.yaml:3: ssh "github": key file nope/id_ed25519 does not exist`},
		{name: "ssh socket and keys", yaml: "project: d\nssh:\n  default: {socket: /s, keys: [Dockerfile]}\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", want: "not both"},
		{name: "context folder missing", yaml: "project: d\nimages:\n  - {name: a, dockerfile: Dockerfile, contexts: {src: nope}}\n", want: `hoist.yaml:3: image "a": context "src": folder nope does not exist`},
		{name: "context bad scheme", yaml: "project: d\nimages:\n  - {name: a, dockerfile: Dockerfile, contexts: {src: 'https://x/y.git'}}\n", want: `use a folder or docker-image://REF`},
		{name: "context empty image", yaml: "project: d\nimages:\n  - {name: a, dockerfile: Dockerfile, contexts: {src: 'docker-image://'}}\n", want: `write docker-image://REF`},
		{name: "wrong type in list", yaml: "project: d\nimages:\n  - name: a\n    dockerfile: Dockerfile\n    test: {command: x}\n", want: `hoist.yaml:5: wrong type: "x" is str, want a list`},
		{name: "base platform unknown", yaml: "project: d\nbases:\n  - {ref: 'd/b:1', files: {/x: Dockerfile}, platforms: {linux/m68k: {files: {/x: Dockerfile}}}}\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", want: `hoist.yaml:3: base d/b:1: platforms: "linux/m68k" is not a platform Hoist builds for`},
		{name: "base platform spelled otherwise", yaml: "project: d\nbases:\n  - {ref: 'd/b:1', files: {/x: Dockerfile}, platforms: {linux/aarch64: {files: {/x: Dockerfile}}}}\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", want: "platforms: write linux/aarch64 as linux/arm64"},
		{name: "base platform without files", yaml: "project: d\nbases:\n  - {ref: 'd/b:1', files: {/x: Dockerfile}, platforms: {linux/arm64: {}}}\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", want: "platforms: linux/arm64 has no files"},
		{name: "base platform without its busybox", yaml: "project: d\nbases:\n  - {ref: 'd/b:1', busybox: Dockerfile, platforms: {linux/arm64: {files: {/x: Dockerfile}}}}\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", want: "platforms: linux/arm64 has no busybox, so it would get the engine's"},
		{name: "base platform file missing", yaml: "project: d\nbases:\n  - {ref: 'd/b:1', files: {/x: Dockerfile}, platforms: {linux/arm64: {files: {/x: nope}}}}\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", want: "hoist.yaml:3: base d/b:1: linux/arm64 host file nope is missing"},
		{name: "check without run", yaml: "project: d\nchecks:\n  - {name: vet}\nimages:\n  - {name: a, dockerfile: Dockerfile}\n", want: "hoist.yaml:3: a check needs a name and a run command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("hoist.yaml", repo(t), []byte(tt.yaml))
			if err == nil {
				t.Fatalf("no error; want %q", tt.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Fatalf("error %q\nwant it to contain %q", msg, tt.want)
			}
			if strings.Contains(msg, "\n") {
				t.Fatalf("error is more than one line: %q", msg)
			}
			if !strings.HasPrefix(msg, "hoist.yaml") {
				t.Fatalf("error does not name the file: %q", msg)
			}
		})
	}
}

func TestParseBuildKeys(t *testing.T) {
	dir := repo(t)
	if err := os.Mkdir(filepath.Join(dir, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := Parse("hoist.yaml", dir, []byte(`project: d
network: none
secrets:
  npmrc: {file: Dockerfile}
  pip_token: {env: PIP_TOKEN, pr: true}
ssh:
  default:
  deploy: {keys: [Dockerfile]}
images:
  - {name: a, dockerfile: Dockerfile, network: host, contexts: {src: src, base: 'docker-image://d/base:1'}}
  - {name: b, dockerfile: Dockerfile}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.NetworkOf(c.Images[0]); got != NetworkHost {
		t.Errorf("image a network = %q, want host", got)
	}
	if got := c.NetworkOf(c.Images[1]); got != NetworkNone {
		t.Errorf("image b network = %q, want the top level's none", got)
	}
	if s := c.Secrets["pip_token"]; s.Env != "PIP_TOKEN" || !s.PR || s.Line != 5 {
		t.Errorf("pip_token = %+v", s)
	}
	if s, ok := c.SSH["default"]; !ok || s.Line != 7 || s.Socket != "" || len(s.Keys) != 0 {
		t.Errorf("ssh default = %+v (present %v), want the agent entry at line 7", s, ok)
	}
	if c.Images[0].Contexts["base"] != "docker-image://d/base:1" {
		t.Errorf("contexts = %v", c.Images[0].Contexts)
	}
	c, err = Parse("hoist.yaml", dir, []byte("project: d\nimages:\n  - {name: a, dockerfile: Dockerfile}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Network != NetworkDefault {
		t.Errorf("network = %q, want default", c.Network)
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "hoist.yaml"))
	if err == nil || !strings.Contains(err.Error(), "no such file: create it") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(good)
	f.Add("project: d\nimages:\n  - {name: a, dockerfile: Dockerfile}\n")
	f.Add("project: d\nimages:\n  - name: a-{{.x}}\n    dockerfile: Dockerfile\n    matrix: {axes: {x: [1, 2]}, include: [{x: 3}]}\n")
	f.Add("project: d\nplatforms: [linux/amd64, linux/arm64]\nimages:\n  - {name: a, dockerfile: Dockerfile, platforms: [linux/arm/v7]}\n")
	f.Add("- [")
	// Paths that leave the folder, limits and late failures.
	f.Add("project: d\nimages:\n  - {name: a, dockerfile: Dockerfile, context: ../../etc}\n")
	f.Add("project: d\noutside: [/]\nbuild_dir: ../x\nimages:\n  - {name: a, dockerfile: Dockerfile}\n")
	f.Add("project: d\nregistry: {local_port: 70000}\nimages:\n  - {name: a, dockerfile: .}\n")
	f.Add("project: d\nimages:\n" + strings.Repeat("  - {name: a, dockerfile: Dockerfile}\n", 2000))
	f.Add("project: d\nimages:\n  - name: a-{{.x}}\n    dockerfile: Dockerfile\n    matrix: {axes: {x: {file: /dev/zero}}}\n")
	f.Add("a: &a [*a, *a, *a, *a]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b, *b]\n")
	dir := f.TempDir()
	for name, body := range map[string]string{"Dockerfile": "FROM scratch\n", "demo.tmpl": "FROM x\n", "PYTHON_VERSIONS": "3.12\n", "busybox": "b"} {
		os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse("hoist.yaml", dir, []byte(s))
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error for %q: %q", s, err)
			}
			return
		}
		if c.Project == "" || len(c.Images) == 0 {
			t.Fatalf("accepted a config without project or images: %q", s)
		}
	})
}
