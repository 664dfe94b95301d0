package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/hoistci/hoist/pkg/matrix"
	"github.com/hoistci/hoist/pkg/readlimit"
)

var validName = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*$`)

// validID is what BuildKit accepts as a secret, SSH or context name here.
var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func validNetwork(n string) error {
	switch n {
	case NetworkDefault, NetworkNone, NetworkHost:
		return nil
	}
	return fmt.Errorf("%q: use default (the engine's default network, as docker build), none or host", n)
}

func (c *Config) validate() error {
	e := func(line int, f string, a ...any) error {
		return &Error{File: c.File, Line: line, Msg: fmt.Sprintf(f, a...)}
	}
	if c.Project == "" {
		return e(1, "project is missing: add `project: NAME` (lowercase; local images are NAME/IMAGE:VERSION)")
	}
	if !validName.MatchString(c.Project) {
		return e(1, "project %q is not a valid image path component: use lowercase letters, digits, '.', '_' or '-'", c.Project)
	}
	if c.Parallel < 0 {
		return e(1, "parallel is %d: use a positive number, or leave it out for the core count", c.Parallel)
	}
	if err := validNetwork(c.Network); err != nil {
		return e(1, "network: %v", err)
	}
	if pc := c.Pins.CommitTo; (pc.Remote == "") != (pc.Branch == "") || (pc.Path != "" && pc.Remote == "") {
		return e(c.Pins.Line, "pins: commit_to needs remote and branch, e.g. commit_to: {remote: git@github.com:org/gitops.git, branch: main}")
	}
	if pc := c.Pins.CommitTo; pc.Path != "" && (strings.HasPrefix(pc.Path, "/") || strings.Contains("/"+pc.Path+"/", "/../")) {
		return e(c.Pins.Line, "pins: commit_to path %q must be a folder inside the branch, e.g. clusters/prod", pc.Path)
	}
	if c.Shards.Threshold < 0 || c.Shards.Count < 0 || c.Shards.Count > 256 {
		return e(c.Shards.Line, "shards: threshold %d, count %d: use a positive threshold and a count from 1 to 256 (a GitHub matrix's limit), or leave them out", c.Shards.Threshold, c.Shards.Count)
	}
	if c.Builder != (Builder{Line: c.Builder.Line}) {
		if err := c.Builder.Check(); err != nil {
			return e(c.Builder.Line, "builder: %v", err)
		}
	}
	for _, id := range sortedMapKeys(c.Secrets) {
		s := c.Secrets[id]
		if !validID.MatchString(id) {
			return e(s.Line, "secret id %q: use letters, digits, '.', '_' or '-' (the id RUN --mount=type=secret,id=ID names)", id)
		}
		if (s.Env == "") == (s.File == "") {
			return e(s.Line, "secret %q: set env (an environment variable) or file (a path), exactly one, e.g. %s: {env: %s}", id, id, strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(id)))
		}
	}
	for _, id := range sortedMapKeys(c.SSH) {
		s := c.SSH[id]
		if !validID.MatchString(id) {
			return e(s.Line, "ssh id %q: use letters, digits, '.', '_' or '-' (the id RUN --mount=type=ssh,id=ID names; default is \"default\")", id)
		}
		if s.Socket != "" && len(s.Keys) > 0 {
			return e(s.Line, "ssh %q: set socket (an agent) or keys (key files), not both", id)
		}
		for _, k := range s.Keys {
			if _, err := os.Stat(c.Path(k)); err != nil {
				return e(s.Line, "ssh %q: key file %s does not exist: fix the path or use the agent (leave keys out)", id, k)
			}
		}
	}
	if err := c.checkPlatforms("platforms", c.Platforms, c.platformLines, c.keyLine["platforms"]); err != nil {
		return err
	}
	if len(c.Images) == 0 {
		return e(1, "no images: add an images list (see docs/config.md)")
	}
	if len(c.Images) > matrix.MaxEntries {
		return e(c.keyLine["images"], "%d images, over the limit of %d a plan may hold: split the pipeline", len(c.Images), matrix.MaxEntries)
	}
	for _, ch := range c.Checks {
		if ch.Name == "" || len(ch.Run) == 0 {
			return e(ch.Line, "a check needs a name and a run command, e.g. {name: vet, run: [go, vet, ./...]}")
		}
	}
	for _, b := range c.Bases {
		if b.Ref == "" {
			return e(b.Line, "a base needs a ref, e.g. ref: %s/busybox:1", c.Project)
		}
		if len(b.Files) == 0 && b.Busybox == "" && len(b.Go) == 0 {
			return e(b.Line, "base %s has no files: add go: {/bin/NAME: ./PACKAGE}, busybox: /bin/busybox or files: {/IN/IMAGE: /ON/HOST}", b.Ref)
		}
		if msg := b.checkGo(c); msg != "" {
			return e(b.Line, "%s", msg)
		}
		if b.Busybox != "" {
			if err := readlimit.Check(c.Path(b.Busybox), "busybox", readlimit.BaseFile); errors.Is(err, fs.ErrNotExist) {
				return e(b.Line, "base %s: busybox %s is missing: apt-get install busybox-static, or change the path", b.Ref, b.Busybox)
			} else if errors.Is(err, readlimit.ErrNotRegular) {
				return e(b.Line, "base %s: busybox %s is not a regular file: name the binary, e.g. /bin/busybox", b.Ref, b.Busybox)
			} else if errors.Is(err, readlimit.ErrTooLarge) {
				return e(b.Line, "base %s: busybox %s is over the limit of %s for a base's file: name the binary (docs/config.md)", b.Ref, b.Busybox, readlimit.Size(readlimit.BaseFile))
			} else if err != nil {
				return e(b.Line, "base %s: busybox %s: %v", b.Ref, b.Busybox, err)
			}
		}
		for in, host := range b.Files {
			if !strings.HasPrefix(in, "/") {
				return e(b.Line, "base %s: file %q must be an absolute path in the image", b.Ref, in)
			}
			// A device such as /dev/zero would be read without end.
			if err := readlimit.Check(c.Path(host), "host file", readlimit.BaseFile); errors.Is(err, fs.ErrNotExist) {
				return e(b.Line, "base %s: host file %s is missing: install it (e.g. apt-get install busybox-static) or change the path", b.Ref, host)
			} else if errors.Is(err, readlimit.ErrNotRegular) {
				return e(b.Line, "base %s: host file %s is not a regular file: name a file", b.Ref, host)
			} else if errors.Is(err, readlimit.ErrTooLarge) {
				return e(b.Line, "base %s: host file %s is over the limit of %s for a base's file: name a smaller file (docs/config.md)", b.Ref, host, readlimit.Size(readlimit.BaseFile))
			} else if err != nil {
				return e(b.Line, "base %s: host file %s: %v", b.Ref, host, err)
			}
		}
	}
	seen := map[string]int{}
	for i := range c.Images {
		img := &c.Images[i]
		if img.Name == "" {
			return e(img.Line, "image %d has no name: add name (a template such as demo-{{.runtime}})", i+1)
		}
		if prev, ok := seen[img.Name]; ok {
			return e(img.Line, "duplicate image name %q (first at line %d): give each image its own name", img.Name, prev)
		}
		seen[img.Name] = img.Line
		switch {
		case img.Dockerfile == "" && img.Template == "":
			return e(img.Line, "image %q: set dockerfile (a path) or template (a Dockerfile template)", img.Name)
		case img.Dockerfile != "" && img.Template != "":
			return e(img.Line, "image %q: set dockerfile or template, not both", img.Name)
		case img.Dockerfile != "":
			if st, err := os.Stat(c.Path(img.Dockerfile)); err != nil {
				return e(img.Line, "image %q: Dockerfile %s does not exist: fix the path or create it", img.Name, img.Dockerfile)
			} else if !st.Mode().IsRegular() {
				return e(img.Line, "image %q: Dockerfile %s is not a regular file: name the Dockerfile itself, e.g. %s", img.Name, img.Dockerfile, filepath.Join(img.Dockerfile, "Dockerfile"))
			}
		default:
			if st, err := os.Stat(c.Path(img.Template)); err != nil {
				return e(img.Line, "image %q: template %s does not exist: fix the path or create it", img.Name, img.Template)
			} else if !st.Mode().IsRegular() {
				return e(img.Line, "image %q: template %s is not a regular file: name the template file itself", img.Name, img.Template)
			}
		}
		if st, err := os.Stat(c.Path(img.Context)); err != nil || !st.IsDir() {
			return e(img.Line, "image %q: context %s is not a folder: fix the path", img.Name, img.Context)
		}
		if err := c.checkPlatforms(fmt.Sprintf("image %q: platforms", img.Name), img.Platforms, img.platformLines, img.Line); err != nil {
			return err
		}
		if img.Network != "" {
			if err := validNetwork(img.Network); err != nil {
				return e(img.Line, "image %q: network: %v", img.Name, err)
			}
		}
		for _, name := range sortedMapKeys(img.Contexts) {
			src := img.Contexts[name]
			if !validID.MatchString(name) {
				return e(img.Line, "image %q: context name %q: use letters, digits, '.', '_' or '-'", img.Name, name)
			}
			if ref, ok := strings.CutPrefix(src, ImageContextPrefix); ok {
				if ref == "" {
					return e(img.Line, "image %q: context %q: write docker-image://REF, e.g. docker-image://alpine:3.20", img.Name, name)
				}
				continue
			}
			if strings.Contains(src, "://") {
				return e(img.Line, "image %q: context %q is %q: use a folder or docker-image://REF", img.Name, name, src)
			}
			if st, err := os.Stat(c.Path(src)); err != nil || !st.IsDir() {
				return e(img.Line, "image %q: context %q: folder %s does not exist: fix the path or create it", img.Name, name, src)
			}
		}
		if img.Matrix != nil {
			if len(img.Matrix.Axes) == 0 {
				return e(img.Matrix.Line, "image %q: matrix has no axes: add at least one", img.Name)
			}
			for _, ax := range img.Matrix.Axes {
				if ax.File == "" && len(ax.Values) == 0 {
					return e(ax.Line, "image %q: axis %q is empty: list at least one value", img.Name, ax.Name)
				}
				if ax.File != "" {
					if _, err := os.Stat(c.Path(ax.File)); err != nil {
						return e(ax.Line, "image %q: axis %q reads %s, which does not exist: create it (one value a line)", img.Name, ax.Name, ax.File)
					}
				}
			}
		} else if strings.Contains(img.Name, "{{") && len(img.Vars) == 0 {
			return e(img.Line, "image %q: the name is a template but the image has no matrix: add a matrix or use a plain name", img.Name)
		}
		if img.Test != nil {
			if len(img.Test.Command) == 0 {
				return e(img.Line, "image %q: test has no command: add command: [sh, -c, ...]", img.Name)
			}
			if n := img.Test.Network; n != "" && n != "none" && n != "host" {
				return e(img.Line, "image %q: test network %q: use none or host", img.Name, n)
			}
		}
	}
	if p := c.Registry.LocalPort; p < 0 || p > 65535 {
		return e(c.Registry.Line, "registry local_port %d is not a TCP port: use 1-65535, or 0 (the default) to pick a free one", p)
	}
	if err := c.checkPaths(); err != nil {
		return err
	}
	switch c.Release.Reserve {
	case "git":
	case "github":
		if c.Release.GitHub == "" {
			return e(c.Release.Line, "release reserve is github but release.github is not set: add github: OWNER/NAME, or use reserve: git")
		}
	default:
		return e(c.Release.Line, "release reserve %q: use git (a push to the remote) or github (GitHub's Git refs API)", c.Release.Reserve)
	}
	if c.Release.StagingBranch == c.Release.MainBranch {
		return e(c.Release.Line, "release staging_branch and main_branch are both %q: they must differ", c.Release.MainBranch)
	}
	for _, s := range c.Scan.Severity {
		switch s {
		case "UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL":
		default:
			return e(c.Scan.Line, "scan severity %q: use UNKNOWN, LOW, MEDIUM, HIGH or CRITICAL", s)
		}
	}
	for _, s := range c.Scan.Scanners {
		switch s {
		case "vuln", "secret":
		default:
			return e(c.Scan.Line, "scan scanner %q: use vuln and/or secret (the gate reads no other Trivy findings)", s)
		}
	}
	if c.Scan.Timeout < 0 {
		return e(c.Scan.Line, "scan timeout %s: use a positive duration such as 10m", c.Scan.Timeout)
	}
	if err := c.validateAttest(); err != nil {
		return err
	}
	for _, ig := range c.Scan.Ignore {
		if ig.ID == "" || ig.Reason == "" {
			return e(ig.Line, "a scan ignore entry needs an id and a reason")
		}
		if ig.Expires != "" {
			if _, err := time.Parse("2006-01-02", ig.Expires); err != nil {
				return e(ig.Line, "scan ignore %s: expires %q is not a date: write YYYY-MM-DD", ig.ID, ig.Expires)
			}
		}
	}
	return nil
}

// Check refuses a builder Hoist cannot reach safely: an address that is
// not tcp:// or unix://, TLS files given in part, and plain TCP to
// anything but this machine (the session carries registry credentials and
// build secrets). Host may come from BUILDKIT_HOST, so the caller checks
// again after overriding it.
func (b Builder) Check() error {
	tlsFiles := 0
	for _, f := range []string{b.CA, b.Cert, b.Key} {
		if f != "" {
			tlsFiles++
		}
	}
	if tlsFiles != 0 && tlsFiles != 3 {
		return fmt.Errorf("set ca, cert and key together (mutual TLS), or none of them")
	}
	if b.Host == "" {
		if tlsFiles != 0 || b.ServerName != "" {
			return fmt.Errorf("TLS settings without host: add host: tcp://HOST:PORT (or set BUILDKIT_HOST)")
		}
		return nil
	}
	u, err := url.Parse(b.Host)
	if err != nil || u.Scheme == "" {
		return fmt.Errorf("host %q is not an address: use tcp://HOST:PORT or unix:///PATH", b.Host)
	}
	switch u.Scheme {
	case "unix":
		if tlsFiles != 0 {
			return fmt.Errorf("host %s is a unix socket: TLS files apply to tcp:// only; remove ca, cert and key", b.Host)
		}
	case "tcp":
		if u.Port() == "" {
			return fmt.Errorf("host %s has no port: use tcp://HOST:PORT (buildkitd's --addr)", b.Host)
		}
		if tlsFiles == 0 && !Loopback(u.Hostname()) {
			return fmt.Errorf("host %s is plain TCP to another machine, which would carry registry credentials and build secrets unencrypted: set ca, cert and key (mutual TLS)", b.Host)
		}
	default:
		return fmt.Errorf("host %s: scheme %s is not supported: use tcp://HOST:PORT (with ca, cert and key) or unix:///PATH", b.Host, u.Scheme)
	}
	return nil
}

// Loopback reports whether host (a name or address, with or without a
// port) is this machine.
func Loopback(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
