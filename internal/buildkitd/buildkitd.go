// Package buildkitd starts a real standalone buildkitd for tests and
// benchmarks: the pinned release built once from the Go module proxy
// (tools/buildkitd, through package gotool), its OCI worker running steps with runc, listening on
// 127.0.0.1 with mutual TLS from certificates made for the run.
package buildkitd

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	_ "embed"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/hoistci/hoist/pkg/gotool"
)

// Pinned is the buildkitd release tools/buildkitd pins.
const Pinned = "0.26.3"

// Module is BuildKit's Go module path.
const Module = "github.com/moby/buildkit"

// The tools module of tools/buildkitd (a test keeps the copies equal).
var (
	//go:embed pinned.go.mod
	pinnedGoMod []byte
	//go:embed pinned.go.sum
	pinnedGoSum []byte
)

const toolsGo = `//go:build tools

// Package tools pins the standalone buildkitd the remote-builder tests run.
// It is a module of its own so that Hoist's go.mod stays free of the
// daemon's dependencies.
package tools

import _ "github.com/moby/buildkit/cmd/buildkitd"
`

// Spec is buildkitd as a pinned tool, built like Trivy and cosign
// (package gotool: a tools module of its own, a file lock, reused).
var Spec = gotool.Spec{
	Name: "buildkitd", Module: Module, Package: Module + "/cmd/buildkitd", Pinned: Pinned,
	GoMod: pinnedGoMod, GoSum: pinnedGoSum, ToolsGo: toolsGo,
	Flags: func(v string) []string {
		return []string{"-trimpath", "-ldflags", "-s -w -X " + Module + "/version.Version=v" + v}
	},
	Version: Version,
}

// Version runs `buildkitd --version` ("buildkitd MODULE vX.Y.Z REVISION")
// and returns the release it reports.
func Version(ctx context.Context, path string) (string, error) {
	if _, err := os.Stat(path); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("running %s --version: %w", path, err)
	}
	f := strings.Fields(string(out))
	if len(f) < 3 || !gotool.VersionRe.MatchString(f[2]) {
		return "", fmt.Errorf("buildkitd reports %q, which names no release", strings.TrimSpace(string(out)))
	}
	return strings.TrimPrefix(f[2], "v"), nil
}

// Ensure returns the pinned buildkitd, building it into toolsDir once when
// neither PATH nor the folder has it.
func Ensure(ctx context.Context, toolsDir string, progress io.Writer) (string, error) {
	t, err := gotool.Ensure(ctx, Spec, gotool.Options{Dir: toolsDir, Progress: progress})
	return t.Path, err
}

// TLS are the PEM files of one run: a CA, the daemon's pair (for
// 127.0.0.1) and a client's pair, all signed by the CA.
type TLS struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
}

// MakeTLS writes a fresh CA with a server and a client certificate into dir.
func MakeTLS(dir string) (TLS, error) {
	t := TLS{
		CA: filepath.Join(dir, "ca.pem"), ServerCert: filepath.Join(dir, "server.pem"), ServerKey: filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client-key.pem"),
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return t, err
	}
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hoist test buildkit CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return t, err
	}
	if err := writePEM(t.CA, "CERTIFICATE", caDER); err != nil {
		return t, err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, certPath, keyPath string) error {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		c := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		if usage == x509.ExtKeyUsageServerAuth {
			c.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
			c.DNSNames = []string{"localhost"}
		}
		der, err := x509.CreateCertificate(rand.Reader, c, caCert, &k.PublicKey, caKey)
		if err != nil {
			return err
		}
		kb, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return err
		}
		if err := writePEM(certPath, "CERTIFICATE", der); err != nil {
			return err
		}
		return writePEM(keyPath, "EC PRIVATE KEY", kb)
	}
	if err := leaf(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, t.ServerCert, t.ServerKey); err != nil {
		return t, err
	}
	return t, leaf(3, "hoist", x509.ExtKeyUsageClientAuth, t.ClientCert, t.ClientKey)
}

func writePEM(path, kind string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600)
}

// Daemon is a running buildkitd.
type Daemon struct {
	Addr   string // tcp://127.0.0.1:PORT
	TLS    TLS
	Log    string // its log file
	cmd    *exec.Cmd
	exited chan struct{}
	root   string
}

// Start runs bin as a daemon with its state under dir, on a free port of
// 127.0.0.1, requiring client certificates signed by a CA made for it. It
// returns once the daemon says it is serving (read from its log, not
// waited for).
func Start(ctx context.Context, bin, runc, dir string) (*Daemon, error) {
	certs := filepath.Join(dir, "certs")
	if err := os.MkdirAll(certs, 0o700); err != nil {
		return nil, err
	}
	tls, err := MakeTLS(certs)
	if err != nil {
		return nil, fmt.Errorf("making certificates: %w", err)
	}
	// A free port: the kernel picks it, the daemon takes it right after.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := "tcp://" + l.Addr().String()
	_ = l.Close()
	d := &Daemon{Addr: addr, TLS: tls, Log: filepath.Join(dir, "buildkitd.log"), root: filepath.Join(dir, "root")}
	logf, err := os.Create(d.Log)
	if err != nil {
		return nil, err
	}
	d.cmd = exec.Command(bin,
		"--root", d.root,
		"--addr", addr,
		"--tlscacert", tls.CA, "--tlscert", tls.ServerCert, "--tlskey", tls.ServerKey,
		"--oci-worker=true", "--containerd-worker=false",
		"--oci-worker-binary", runc,
		// Steps get the host's network (only loopback services are
		// reachable here); "none" builds stay without one.
		"--oci-worker-net", "host",
		"--oci-worker-gc=false",
	)
	d.cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	d.cmd.Stdout, d.cmd.Stderr = io.MultiWriter(logf, pw), io.MultiWriter(logf, pw)
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting buildkitd: %w", err)
	}
	ready := make(chan error, 1)
	go func() {
		serving := regexp.MustCompile(`running server on`)
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			if !sent && serving.MatchString(sc.Text()) {
				ready <- nil
				sent = true
			}
		}
		if !sent {
			ready <- fmt.Errorf("buildkitd exited before serving (log %s)", d.Log)
		}
	}()
	exited := make(chan struct{})
	go func() {
		_ = d.cmd.Wait() // its exit is what Stop and Kill wait for
		_ = pw.Close()
		logf.Close()
		close(exited)
	}()
	d.exited = exited
	select {
	case err := <-ready:
		if err != nil {
			b, _ := os.ReadFile(d.Log)
			return nil, fmt.Errorf("%w: %s", err, tail(string(b)))
		}
		return d, nil
	case <-ctx.Done():
		d.Stop()
		return nil, ctx.Err()
	}
}

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}

// Stop ends the daemon by PID (and its process group: runc children), then
// unmounts what it left under its root and removes it.
func (d *Daemon) Stop() {
	if d.cmd != nil && d.cmd.Process != nil {
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			<-d.exited
		}
	}
	unmountUnder(d.root)
	os.RemoveAll(d.root)
}

// Kill ends the daemon at once (SIGKILL to its process group), as a crash
// or a lost machine would, and waits for it to be gone.
func (d *Daemon) Kill() {
	if d.cmd != nil && d.cmd.Process != nil {
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.exited
	}
}

// unmountUnder lazily unmounts every mount below root, deepest first.
func unmountUnder(root string) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	var mounts []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasPrefix(f[1], root+"/") {
			mounts = append(mounts, f[1])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		_ = syscall.Unmount(mounts[i], syscall.MNT_DETACH) // best effort: RemoveAll reports what stays
	}
}
