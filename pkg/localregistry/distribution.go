// Package localregistry runs registries on 127.0.0.1.
//
// Ensure runs a checkout's own local registry, which Push and Promote use
// when no registry is configured: go-containerregistry's registry with its
// data under the build folder, as a program that outlives the run (Stop
// ends it, Status reports it). It needs nothing but Go.
//
// Start runs Debian's docker-registry (the CNCF distribution registry) for
// the caller alone: the real registry that tests and benchmarks push to,
// with htpasswd credentials when asked.
package localregistry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hoistci/hoist/pkg/lock"
)

// Binary is Debian's distribution registry.
const Binary = "/usr/bin/docker-registry"

// Options configure a registry.
type Options struct {
	// Dir holds the registry's data (Dir/data), its log (Dir/registry.log)
	// and, for Ensure, its recorded port, identity and program.
	Dir string
	// Port on 127.0.0.1. Start: 0 picks a free one. Ensure: 0 means the
	// recorded port, else a free one; any other asks for that port alone.
	Port int
	// ModuleDir is where Ensure runs the go command to build the registry
	// program: a folder of a module that requires Hoist ("" for the current
	// folder).
	ModuleDir string
	// Programs, when set, is a folder shared by every checkout (the
	// tools cache) where Ensure keeps the registry program it builds, so
	// a fresh checkout of the same Hoist builds nothing; empty keeps it
	// in Dir/bin.
	Programs string
	// Htpasswd, when set, is an htpasswd file (bcrypt) Start's registry
	// demands.
	Htpasswd string
	// Binary overrides Start's registry program.
	Binary string
}

// Server is a running registry.
type Server struct {
	Host    string // 127.0.0.1:PORT
	Dir     string
	LogPath string
	PID     int           // Ensure's registry
	cmd     *exec.Cmd     // Start's registry
	done    chan struct{} // closed when Start's registry has exited
}

// Start runs a registry owned by the caller, on o.Port or a free port; Close
// ends it. Tests and benchmarks use this.
func Start(ctx context.Context, o Options) (*Server, error) {
	for attempt := 0; ; attempt++ {
		oo := o
		if oo.Port == 0 {
			p, err := freePort()
			if err != nil {
				return nil, err
			}
			oo.Port = p
		}
		host := "127.0.0.1:" + strconv.Itoa(oo.Port)
		if answers(ctx, host) {
			if o.Port != 0 {
				return nil, fmt.Errorf("starting a registry on %s: something already answers there", host)
			}
			continue
		}
		cmd, err := launch(oo)
		if err != nil {
			return nil, err
		}
		s := &Server{Host: host, Dir: o.Dir, LogPath: filepath.Join(o.Dir, "registry.log"), cmd: cmd, done: make(chan struct{})}
		go func() { _ = cmd.Wait(); close(s.done) }()
		err = waitReady(ctx, host, s.done, s.LogPath)
		if err == nil {
			return s, nil
		}
		_ = s.Close()
		// A free port taken between the probe and the bind: try another.
		if o.Port == 0 && attempt < 3 {
			continue
		}
		return nil, err
	}
}

// Close ends a registry started with Start and waits for it.
func (s *Server) Close() error {
	if s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done: // its exit status after a SIGTERM says nothing
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Config is the registry's configuration file for o on port.
func Config(o Options, port int) string {
	c := fmt.Sprintf(`version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:%d
  headers:
    X-Content-Type-Options: [nosniff]
`, filepath.Join(o.Dir, "data"), port)
	if o.Htpasswd != "" {
		c += fmt.Sprintf(`auth:
  htpasswd:
    realm: hoist
    path: %s
`, o.Htpasswd)
	}
	return c
}

func launch(o Options) (*exec.Cmd, error) {
	bin := o.Binary
	if bin == "" {
		bin = Binary
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("starting the distribution registry: %s is missing: apt-get install docker-registry", bin)
	}
	if o.Dir == "" {
		return nil, errors.New("starting the distribution registry: no folder given")
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, "data"), 0o755); err != nil {
		return nil, fmt.Errorf("starting the distribution registry: %w", err)
	}
	cfg := filepath.Join(o.Dir, "config.yml")
	if err := lock.WriteFileAtomic(cfg, []byte(Config(o, o.Port))); err != nil {
		return nil, fmt.Errorf("starting the distribution registry: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(o.Dir, "registry.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("starting the distribution registry: %w", err)
	}
	defer logf.Close() // the child holds its own descriptor
	// Close ends it, not the context of the call that started it.
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the distribution registry: %w", err)
	}
	return cmd, nil
}

// answers reports whether a registry answers /v2/ on host (200, or 401 when
// it demands credentials).
func answers(ctx context.Context, host string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/v2/", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized) &&
		resp.Header.Get("Docker-Distribution-Api-Version") != ""
}

func waitReady(ctx context.Context, host string, done <-chan struct{}, logPath string) error {
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if answers(ctx, host) {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("the distribution registry on %s exited: see %s", host, logPath)
		case <-deadline.C:
			return fmt.Errorf("the distribution registry on %s did not answer within 20s: see %s", host, logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Counts are what the registry's access log shows.
type Counts struct {
	Uploads      int // completed blob uploads
	Mounts       int // blobs mounted from another repository
	ManifestPuts int
	Requests     int
}

// Counts reads the access log of the registry so far.
func (s *Server) Counts() (Counts, error) {
	b, err := os.ReadFile(s.LogPath)
	if err != nil {
		return Counts{}, fmt.Errorf("reading the registry log: %w", err)
	}
	return ParseLog(b), nil
}

// ParseLog counts the requests of a distribution registry access log
// (combined log format).
func ParseLog(b []byte) Counts {
	var c Counts
	for _, e := range accessLog(b) {
		req, status := e.req, e.status
		if len(req) < 2 || len(status) < 1 {
			continue
		}
		c.Requests++
		method, uri, code := req[0], req[1], status[0]
		if code != "201" {
			continue
		}
		switch {
		case method == "POST" && strings.Contains(uri, "/blobs/uploads/") && strings.Contains(uri, "mount=") && strings.Contains(uri, "from="):
			c.Mounts++
		case (method == "PUT" || method == "POST") && strings.Contains(uri, "/blobs/uploads/") && strings.Contains(uri, "digest="):
			c.Uploads++
		case method == "PUT" && strings.Contains(uri, "/manifests/"):
			c.ManifestPuts++
		}
	}
	return c
}

// accessEntry is one request line of an access log: the request's fields
// (method, path, protocol) and what follows it (status, size, …).
type accessEntry struct{ req, status []string }

// accessLog reads a distribution registry access log (combined log format).
func accessLog(b []byte) []accessEntry {
	var out []accessEntry
	for _, line := range bytes.Split(b, []byte("\n")) {
		q1 := bytes.IndexByte(line, '"')
		if q1 < 0 || !bytes.Contains(line, []byte(" - - [")) {
			continue
		}
		rest := line[q1+1:]
		q2 := bytes.IndexByte(rest, '"')
		if q2 < 0 {
			continue
		}
		out = append(out, accessEntry{strings.Fields(string(rest[:q2])), strings.Fields(string(rest[q2+1:]))})
	}
	return out
}
