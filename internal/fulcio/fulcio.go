// Package fulcio runs a real Fulcio, the Sigstore certificate authority,
// on 127.0.0.1 for tests of keyless signing: built from the Go module proxy
// at the pinned release (package gotool, as cosign and Trivy are), with an
// ephemeral CA, no certificate transparency log, and one OIDC issuer of
// type github-workflow (the stand-in for GitHub Actions' token service,
// githubtest.OIDC).
package fulcio

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/json"
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
	"syscall"
	"testing"
	"time"

	"github.com/hoistci/hoist/internal/cosign"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/gotool"
)

// Pinned is the Fulcio release the tests issue certificates with.
const Pinned = "1.8.8"

// Module is Fulcio's Go module path (its main package is the module root).
const Module = "github.com/sigstore/fulcio"

// The tools module of tools/fulcio (a test keeps the copies equal).
var (
	//go:embed pinned.go.mod
	pinnedGoMod []byte
	//go:embed pinned.go.sum
	pinnedGoSum []byte
)

const toolsGo = `//go:build tools

// Package tools pins the Fulcio release Hoist's tests issue keyless signing
// certificates with. It is a module of its own so that Hoist's go.mod stays
// free of Fulcio's dependencies.
package tools

import _ "github.com/sigstore/fulcio"
`

// Spec is Fulcio as a pinned tool. Its `version --json` has cosign's shape
// (both stamp sigs.k8s.io/release-utils).
var Spec = gotool.Spec{
	Name: "fulcio", Module: Module, Package: Module, Pinned: Pinned,
	GoMod: pinnedGoMod, GoSum: pinnedGoSum, ToolsGo: toolsGo,
	Flags:   cosign.ReleaseUtilsFlags,
	Version: cosign.Version,
}

// Binary returns the pinned Fulcio, building it on first use (a few
// minutes on a cold machine). Without Go it skips, except in CI.
func Binary(t testing.TB) string {
	t.Helper()
	testenv.Binary(t, "go", "golang-go")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	tool, err := gotool.Ensure(ctx, Spec, gotool.Options{Dir: cosign.ToolsDir(), Progress: logWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	return tool.Path
}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Server is a running Fulcio.
type Server struct {
	URL string // http://127.0.0.1:PORT
	// RootPEM is its ephemeral CA's root certificate, and RootFile the
	// same in a file (cosign's SIGSTORE_ROOT_FILE).
	RootPEM  []byte
	RootFile string
	PID      int
}

// Start runs Fulcio trusting tokens of issuer (an http://127.0.0.1 URL
// serving OIDC discovery, which Fulcio reads at start) as GitHub Actions
// tokens, audience sigstore; the test's cleanup stops it by its PID.
func Start(t testing.TB, issuer string) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	cfg, err := json.Marshal(map[string]any{"OIDCIssuers": map[string]any{
		issuer: map[string]string{"IssuerURL": issuer, "ClientID": "sigstore", "Type": "github-workflow"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	// Fulcio takes port numbers, not listeners: a port another process
	// takes in between makes it exit, and the next attempt picks again.
	for attempt := 1; ; attempt++ {
		s, err := start(t, bin, dir, cfgPath)
		if err == nil {
			return s
		}
		if attempt == 3 {
			t.Fatalf("starting fulcio: %v", err)
		}
		t.Logf("starting fulcio (attempt %d): %v", attempt, err)
	}
}

func start(t testing.TB, bin, dir, cfgPath string) (*Server, error) {
	var ports [3]int
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	port := ports[0]
	// HTTP and gRPC on ports of their own: Fulcio 1.8.8's single-port
	// (duplex) server panics registering its metrics twice. The legacy
	// gRPC socket is an abstract one named by the port, so Fulcios
	// started at once do not share it.
	cmd := exec.Command(bin, "serve",
		"--ca", "ephemeralca", "--ct-log-url", "", "--config-path", cfgPath,
		"--host", "127.0.0.1", "--port", strconv.Itoa(port),
		"--grpc-host", "127.0.0.1", "--grpc-port", strconv.Itoa(ports[1]),
		"--metrics-port", strconv.Itoa(ports[2]),
		"--legacy-unix-domain-socket", "@hoist-fulcio-legacy-"+strconv.Itoa(port),
		"--log_type", "dev")
	cmd.Dir = dir
	logPath := filepath.Join(dir, fmt.Sprintf("fulcio-%d.log", port))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	// exited is closed once Fulcio has exited, waitErr then set.
	var waitErr error
	exited := make(chan struct{})
	go func() {
		waitErr = cmd.Wait()
		_ = pw.CloseWithError(io.EOF)
		close(exited)
	}()
	ready := make(chan struct{})
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		defer logFile.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		signalled := false
		for sc.Scan() {
			fmt.Fprintln(logFile, sc.Text())
			if !signalled && strings.Contains(sc.Text(), "listening on http at") {
				signalled = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		<-copied
	}
	select {
	case <-ready:
	case <-exited:
		_ = pr.Close()
		<-copied
		b, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("fulcio exited (%v) before it listened:\n%s", waitErr, tail(b))
	case <-time.After(60 * time.Second):
		stop()
		b, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("fulcio did not listen within a minute:\n%s", tail(b))
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("fulcio's log:\n%s", tail(b))
		}
	})
	s := &Server{URL: "http://127.0.0.1:" + strconv.Itoa(port), PID: cmd.Process.Pid}
	// Fulcio logs before its HTTP server listens: ask until it answers,
	// while it runs.
	var root []byte
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for root == nil {
		select {
		case <-exited:
			return nil, fmt.Errorf("fulcio exited (%v) after it said it listens", waitErr)
		case <-deadline:
			return nil, fmt.Errorf("fulcio did not answer on %s within 30 s", s.URL)
		case <-tick.C:
			root, err = trustBundleRoot(t.Context(), s.URL)
			if err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
				return nil, err
			}
		}
	}
	s.RootPEM = root
	s.RootFile = filepath.Join(dir, "fulcio-root.pem")
	if err := os.WriteFile(s.RootFile, root, 0o644); err != nil {
		return nil, err
	}
	return s, nil
}

// trustBundleRoot asks Fulcio for its chains (GET /api/v2/trustBundle) and
// returns the root: the last certificate of the first chain.
func trustBundleRoot(ctx context.Context, base string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v2/trustBundle", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading fulcio's trust bundle: %w", err)
	}
	defer resp.Body.Close()
	var tb struct {
		Chains []struct {
			Certificates []string `json:"certificates"`
		} `json:"chains"`
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("reading fulcio's trust bundle: %s: %s", resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&tb); err != nil {
		return nil, fmt.Errorf("reading fulcio's trust bundle: %w", err)
	}
	if len(tb.Chains) == 0 || len(tb.Chains[0].Certificates) == 0 {
		return nil, fmt.Errorf("fulcio's trust bundle holds no certificate")
	}
	certs := tb.Chains[0].Certificates
	return []byte(certs[len(certs)-1]), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
