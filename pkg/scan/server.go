package scan

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// server is one `trivy server` on the loopback interface. It holds the
// vulnerability DB open once for every scan of a run: standalone Trivy
// processes take an exclusive lock on the DB file for their whole run, so
// parallel standalone scans sharing one DB would simply queue.
type server struct {
	addr  string // http://127.0.0.1:PORT
	token string
	cmd   *exec.Cmd
	done  chan struct{} // closed when the process exited
	err   error         // its exit error, set before done closes
	log   tailBuffer
}

// startServer starts trivy server and waits until it answers. The DB is
// opened (and, online, downloaded) before it listens.
func startServer(ctx context.Context, bin, cacheDir, workDir string, offline bool, dbRepo string) (*server, error) {
	// The free port is found by listening and closing, so another process
	// may take it in between: try again on a new port when that happens.
	for try := 0; ; try++ {
		s, err := startServerOnce(ctx, bin, cacheDir, workDir, offline, dbRepo)
		if err == nil || try == 2 || !strings.Contains(err.Error(), "address already in use") {
			return s, err
		}
	}
}

func startServerOnce(ctx context.Context, bin, cacheDir, workDir string, offline bool, dbRepo string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	tok := make([]byte, 16)
	rand.Read(tok)
	s := &server{addr: "http://127.0.0.1:" + port, token: hex.EncodeToString(tok), done: make(chan struct{})}
	args := []string{"server", "--listen", "127.0.0.1:" + port, "--cache-dir", cacheDir, "--cache-backend", "memory", "--quiet"}
	if offline {
		args = append(args, "--skip-db-update")
	} else if dbRepo != "" {
		args = append(args, "--db-repository", dbRepo)
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Dir = workDir
	s.cmd.Env = trivyEnv("TRIVY_TOKEN=" + s.token)
	s.cmd.Stdout, s.cmd.Stderr = &s.log, &s.log
	if err := startTied(s.cmd, func(err error) {
		s.err = err
		close(s.done)
	}); err != nil {
		return nil, fmt.Errorf("starting trivy server: %w", err)
	}
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-ctx.Done():
			s.stop()
			return nil, fmt.Errorf("waiting for trivy server: %w", ctx.Err())
		case <-s.done:
			return nil, fmt.Errorf("trivy server stopped before it answered (%v): %s", s.err, s.log.last())
		case <-tick.C:
		}
		resp, err := client.Get(s.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
	}
}

// failed returns why the server is gone, or nil while it runs.
func (s *server) failed() error {
	select {
	case <-s.done:
		return fmt.Errorf("trivy server stopped during the scan (%v): %s", s.err, s.log.last())
	default:
		return nil
	}
}

// stop ends the server and waits for it.
func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free loopback port for trivy server: %w", err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	if err := l.Close(); err != nil {
		return "", fmt.Errorf("freeing the loopback port for trivy server: %w", err)
	}
	return port, nil
}

// trivyEnv is the environment Trivy runs with: the caller's, minus every
// TRIVY_* variable (they would silently change the policy, e.g.
// TRIVY_SEVERITY), plus extra. Hoist passes every setting as a flag.
func trivyEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TRIVY_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// tailBuffer keeps the last bytes written, for error messages. A process's
// output goroutine may write while another reads it.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 8192 {
		t.b = t.b[len(t.b)-8192:]
	}
	return len(p), nil
}

// last returns Trivy's last error as one line: the FATAL or ERROR line and
// the detail lines under it, without the timestamp and level.
func (t *tailBuffer) last() string {
	t.mu.Lock()
	text := string(t.b)
	t.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(text), "\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "panic: ") {
			l = strings.TrimSpace(l)
			if len(l) > 600 {
				l = l[:600] + "…"
			}
			return "trivy crashed: " + l
		}
	}
	from := len(lines) - 1
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "\tFATAL\t") || strings.Contains(lines[i], "\tERROR\t") {
			from = i
			break
		}
	}
	var parts []string
	for _, l := range lines[max(from, 0):] {
		f := strings.Split(strings.TrimSpace(l), "\t")
		if len(f) >= 3 && (f[1] == "FATAL" || f[1] == "ERROR") {
			f = f[2:] // timestamp, level
			if f[0] == "Fatal error" && len(f) > 1 {
				f = f[1:]
			}
		}
		if s := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(strings.Join(f, " ")), "* ")); s != "" {
			parts = append(parts, s)
		}
	}
	s := strings.Join(parts, " ")
	if s == "" {
		return "no output"
	}
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return s
}

// execTrivy prepares one Trivy client run against the server.
func execTrivy(ctx context.Context, bin string, args []string, dir, token string, log *tailBuffer) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = trivyEnv("TRIVY_TOKEN=" + token)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}
