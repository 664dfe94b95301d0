// Package localregistry runs Debian's docker-registry (the CNCF distribution
// registry) on 127.0.0.1, with its data under the build folder, so Push and
// Promote work on a fresh machine with no registry configured, and tests and
// benchmarks get a real registry.
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
	"sync"
	"syscall"
	"time"

	"github.com/hoistci/hoist/pkg/lock"
)

// Binary is Debian's distribution registry.
const Binary = "/usr/bin/docker-registry"

// Options configure a registry.
type Options struct {
	// Dir holds the config, the data (Dir/data) and the log (Dir/registry.log).
	Dir string
	// Port on 127.0.0.1; 0 picks a free one (Start only).
	Port int
	// Htpasswd, when set, is an htpasswd file (bcrypt) the registry demands.
	Htpasswd string
	// Binary overrides the registry program.
	Binary string
}

// Server is a running registry.
type Server struct {
	Host    string // 127.0.0.1:PORT
	Dir     string
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
}

// Ensure returns the registry answering on 127.0.0.1:o.Port, starting one
// in the background when none does. A started registry outlives the caller
// (it is shared by later Push and Promote runs); Stop ends it.
func Ensure(ctx context.Context, o Options) (*Server, error) {
	if o.Port == 0 {
		return nil, errors.New("starting the local registry: no port given")
	}
	host := "127.0.0.1:" + strconv.Itoa(o.Port)
	s := &Server{Host: host, Dir: o.Dir, LogPath: filepath.Join(o.Dir, "registry.log")}
	if answers(ctx, host) {
		return s, nil
	}
	cmd, err := launch(o, true)
	if err != nil {
		return nil, err
	}
	pid := cmd.Process.Pid
	if err := os.WriteFile(filepath.Join(o.Dir, "registry.pid"), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("starting the local registry: %w", err)
	}
	// No goroutine waits for it: it outlives this process by design. An
	// early exit shows as a zombie in /proc, which waitReady watches for.
	done := make(chan struct{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		watchExit(pid, done, stop)
	}()
	err = waitReady(ctx, host, done, s.LogPath)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait() // reap it; the failure is already reported
	}
	close(stop)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	_ = cmd.Process.Release() // it lives on by design
	return s, nil
}

// Stop ends a registry Ensure started in dir (by its recorded pid).
func Stop(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "registry.pid"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(string(trimNL(b)))
	if err != nil {
		return fmt.Errorf("%s/registry.pid: %w", dir, err)
	}
	os.Remove(filepath.Join(dir, "registry.pid"))
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stopping the local registry (pid %d): %w", pid, err)
	}
	return nil
}

// watchExit reports on done when process pid has exited (gone or a zombie).
func watchExit(pid int, done chan<- struct{}, stop <-chan struct{}) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil || bytes.Contains(b, []byte(") Z ")) {
			close(done)
			return
		}
	}
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
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
		cmd, err := launch(oo, false)
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

func launch(o Options, detach bool) (*exec.Cmd, error) {
	bin := o.Binary
	if bin == "" {
		bin = Binary
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("starting the local registry: %s is missing: apt-get install docker-registry, or set registry.host in hoist.yaml", bin)
	}
	if o.Dir == "" {
		return nil, errors.New("starting the local registry: no folder given")
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, "data"), 0o755); err != nil {
		return nil, fmt.Errorf("starting the local registry: %w", err)
	}
	cfg := filepath.Join(o.Dir, "config.yml")
	if err := lock.WriteFileAtomic(cfg, []byte(Config(o, o.Port))); err != nil {
		return nil, fmt.Errorf("starting the local registry: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(o.Dir, "registry.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("starting the local registry: %w", err)
	}
	defer logf.Close() // the child holds its own descriptor
	// No context: the registry must not die with the call that started it.
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	if detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the local registry: %w", err)
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
			return fmt.Errorf("the local registry on %s exited: see %s", host, logPath)
		case <-deadline.C:
			return fmt.Errorf("the local registry on %s did not answer within 20s: see %s", host, logPath)
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
		req := strings.Fields(string(rest[:q2]))
		status := strings.Fields(string(rest[q2+1:]))
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
