// Package kubenode runs a real single-node Kubernetes for tests and
// benchmarks where k3s cannot run: the node is a container labelled exactly
// as k3d labels a server node (app=k3d, k3d.cluster=NAME, k3d.role=server),
// running Debian's containerd and the upstream kubelet inside it as kind
// nodes do, so Hoist's cluster code finds and loads it as it would a k3s
// node. etcd and the control plane (API server, controller manager,
// scheduler) run beside it as processes on 127.0.0.1.
//
// The node container shares the host's network (only loopback traffic
// leaves it) and must be privileged. On machines whose capability bounding
// set lacks CAP_SYS_RESOURCE the engine refuses privileged containers unless
// it runs them through the hoist-runc runtime that scripts/engine-up.sh
// registers; Start uses that runtime when the engine lists it.
package kubenode

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/hoistci/hoist/pkg/engine"
)

const (
	serviceRange = "10.96.0.0/16"
	serviceIP    = "10.96.0.1"
	// NodeName is the node's name in Kubernetes. The API server reaches the
	// kubelet by it (for logs and exec), and a kubelet refuses a loopback
	// node IP, so the node is called by the one name that resolves to
	// loopback everywhere.
	NodeName = "localhost"
	// Runtime is the engine runtime scripts/engine-up.sh registers where
	// privileged containers otherwise fail.
	Runtime = "hoist-runc"
	// LabelOwner marks node containers with the PID of the process that
	// started them, so a later Start can clean up after one that died.
	LabelOwner = "io.hoist.kubenode.owner"
	// LabelKubeconfig is the host path of the node's admin kubeconfig.
	LabelKubeconfig = "io.hoist.kubenode.kubeconfig"
	pauseRef        = "hoist-kubenode/pause:1"
)

// Options configure Start.
type Options struct {
	Engine     *engine.Engine
	Components Components
	// Cluster is the k3d cluster name the node container is labelled with.
	Cluster string
	// Dir is the node's working folder (certificates, configuration, etcd's
	// data, logs); Stop leaves it for the caller to remove.
	Dir string
	// Ready bounds the wait for the node to become Ready (default 2m).
	Ready time.Duration
	// Keep makes the node outlive this process (cluster:create): its
	// control plane runs in a session of its own, not bound to this
	// process's life, and Sweep leaves it while it runs. StopKept stops it
	// from any later process.
	Keep bool
}

// Node is a running single-node Kubernetes.
type Node struct {
	// Container is the node container's name (k3d-CLUSTER-server-0), which
	// Hoist's cluster code finds by its k3d labels.
	Container  string
	Cluster    string
	Kubeconfig string // admin kubeconfig on the host
	Server     string // the API server's URL
	Kubectl    string // the pinned kubectl
	Dir        string

	e       *engine.Engine
	keep    bool
	procs   []*proc
	bridge  string
	cgroup  string
	client  *http.Client
	stopped bool
}

// proc is one control-plane process Start runs on the host.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// Start brings the node up and returns once it is Ready and pods can be
// created in the default namespace. On failure everything it started is
// stopped again and the error names the component that failed, with the
// last lines of its log.
func Start(ctx context.Context, o Options) (n *Node, err error) {
	if o.Engine == nil || o.Cluster == "" || o.Dir == "" || o.Components.Dir == "" {
		return nil, errors.New("kubenode: Engine, Cluster, Dir and Components are required")
	}
	if o.Ready <= 0 {
		o.Ready = 2 * time.Minute
	}
	host, err := hostTools()
	if err != nil {
		return nil, err
	}
	Sweep(ctx, o.Engine)
	id := shortID(o.Cluster + o.Dir)
	n = &Node{
		Container: "k3d-" + o.Cluster + "-server-0",
		Cluster:   o.Cluster,
		Dir:       o.Dir,
		Kubectl:   o.Components.Path("kubectl"),
		e:         o.Engine,
		keep:      o.Keep,
		bridge:    "hk" + id[:8],
		cgroup:    "/hoist-kubenode-" + id[:12],
	}
	defer func() {
		if err != nil {
			if serr := n.Stop(context.WithoutCancel(ctx)); serr != nil {
				err = fmt.Errorf("%w (stopping what had started: %v)", err, serr)
			}
		}
	}()
	for _, d := range []string{"logs", "node", "etcd"} {
		if err := os.MkdirAll(filepath.Join(o.Dir, d), 0o700); err != nil {
			return n, err
		}
	}
	ports, err := freePorts(4)
	if err != nil {
		return n, err
	}
	etcdPort, peerPort, apiPort, kubeletPort := ports[0], ports[1], ports[2], ports[3]
	p, err := writePKI(o.Dir)
	if err != nil {
		return n, err
	}
	n.Server = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	n.Kubeconfig = filepath.Join(o.Dir, "kubeconfig")
	if err := os.WriteFile(n.Kubeconfig, p.kubeconfig(n.Server, o.Cluster), 0o600); err != nil {
		return n, err
	}
	n.client, err = p.httpClient()
	if err != nil {
		return n, err
	}

	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	if err := n.run(ctx, "etcd", host["etcd"],
		"--name=hoist", "--data-dir="+filepath.Join(o.Dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		fmt.Sprintf("--listen-peer-urls=http://127.0.0.1:%d", peerPort),
		fmt.Sprintf("--initial-advertise-peer-urls=http://127.0.0.1:%d", peerPort),
		fmt.Sprintf("--initial-cluster=hoist=http://127.0.0.1:%d", peerPort),
		"--unsafe-no-fsync", "--log-level=warn"); err != nil {
		return n, err
	}
	if err := n.await(ctx, 30*time.Second, "etcd to answer", func() error { return n.get(ctx, etcdURL+"/health", nil) }); err != nil {
		return n, err
	}
	c := o.Components
	if err := n.run(ctx, "kube-apiserver", c.Path("kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", apiPort),
		"--endpoint-reconciler-type=none", "--kubelet-preferred-address-types=Hostname",
		"--authorization-mode=Node,RBAC", "--allow-privileged=true",
		"--client-ca-file="+p.caFile, "--tls-cert-file="+p.serverCert, "--tls-private-key-file="+p.serverKey,
		"--kubelet-client-certificate="+p.adminCertFile, "--kubelet-client-key="+p.adminKeyFile,
		"--service-account-key-file="+p.saPub, "--service-account-signing-key-file="+p.saKey,
		"--service-account-issuer=https://kubernetes.default.svc", "--service-cluster-ip-range="+serviceRange,
		"--cert-dir="+filepath.Join(o.Dir, "apiserver-certs"), "--profiling=false"); err != nil {
		return n, err
	}
	if err := n.await(ctx, time.Minute, "the API server to become ready", func() error { return n.get(ctx, n.Server+"/readyz", nil) }); err != nil {
		return n, err
	}
	if err := n.run(ctx, "kube-controller-manager", c.Path("kube-controller-manager"),
		"--kubeconfig="+n.Kubeconfig, "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=0",
		"--service-account-private-key-file="+p.saKey, "--root-ca-file="+p.caFile,
		"--use-service-account-credentials=false", "--controllers=*,-nodeipam,-cloud-node-lifecycle",
		"--profiling=false"); err != nil {
		return n, err
	}
	if err := n.run(ctx, "kube-scheduler", c.Path("kube-scheduler"),
		"--kubeconfig="+n.Kubeconfig, "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=0", "--profiling=false"); err != nil {
		return n, err
	}

	img, err := nodeImage(ctx, o.Engine, c, host)
	if err != nil {
		return n, err
	}
	if err := n.writeNodeFiles(ctx, p, kubeletPort); err != nil {
		return n, err
	}
	if err := n.startContainer(ctx, img); err != nil {
		return n, err
	}
	err = n.await(ctx, o.Ready, "node "+NodeName+" to become Ready", func() error {
		if err := n.containerRunning(ctx); err != nil {
			return permanent{err}
		}
		if err := n.nodeReady(ctx); err != nil {
			return err
		}
		// Pods are refused until the namespace's default service account
		// exists; the controller manager makes it.
		return n.get(ctx, n.Server+"/api/v1/namespaces/default/serviceaccounts/default", nil)
	})
	return n, err
}

// hostTools finds the host programs the node is made of, naming the
// package to install for each that is missing.
func hostTools() (map[string]string, error) {
	want := []struct{ name, pkg string }{
		{"etcd", "etcd-server"}, {"containerd", "containerd"}, {"containerd-shim-runc-v2", "containerd"},
		{"ctr", "containerd"}, {"runc", "runc"}, {"mount", "mount"}, {"umount", "mount"}, {"busybox", "busybox-static"},
	}
	found := map[string]string{}
	var missing []string
	for _, w := range want {
		p, err := exec.LookPath(w.name)
		if err != nil {
			missing = append(missing, w.pkg)
			continue
		}
		if p, err = filepath.EvalSymlinks(p); err != nil {
			return nil, err
		}
		found[w.name] = p
	}
	for _, plugin := range []string{"bridge", "host-local", "loopback"} {
		p := filepath.Join("/usr/lib/cni", plugin)
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, "containernetworking-plugins")
			break
		}
		found["cni/"+plugin] = p
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("a Kubernetes node needs %s, which this machine lacks: run `bash scripts/engine-up.sh --for-tests` (or apt-get install them)", strings.Join(compact(missing), ", "))
	}
	return found, nil
}

func compact(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func shortID(s string) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d\x00%d", s, os.Getpid(), time.Now().UnixNano()))
	return hex.EncodeToString(h[:])
}

// freePorts asks the kernel for n free loopback ports (they are released
// before use, so another process could take one in between; the component
// then fails to bind and Start says so).
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close() // only the port numbers were wanted
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// run starts a control-plane process logging to logs/NAME.log. It dies with
// this process (PDEATHSIG) should Stop never run, unless the node is kept:
// then it runs in a session of its own.
func (n *Node) run(ctx context.Context, name, bin string, args ...string) error {
	log := filepath.Join(n.Dir, "logs", name+".log")
	f, err := os.Create(log)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if n.keep {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	n.procs = append(n.procs, p)
	return nil
}

// permanent marks an error await must not retry.
type permanent struct{ error }

// await calls check until it returns nil, a process dies, or timeout passes,
// pacing itself with a ticker.
func (n *Node) await(ctx context.Context, timeout time.Duration, what string, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		last = check()
		if last == nil {
			return nil
		}
		var perm permanent
		if errors.As(last, &perm) {
			return fmt.Errorf("waiting for %s: %w", what, perm.error)
		}
		for _, p := range n.procs {
			select {
			case <-p.done:
				return fmt.Errorf("waiting for %s: %s exited (%v): %s", what, p.name, p.err, logTail(p.log))
			default:
			}
		}
		select {
		case <-ctx.Done():
			if parent := context.Cause(ctx); errors.Is(parent, context.Canceled) {
				return parent
			}
			return fmt.Errorf("%s did not happen within %s: %v", what, timeout, last)
		case <-tick.C:
		}
	}
}

func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "no log"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}

// httpClient trusts the node's CA and presents the admin certificate.
func (p *pki) httpClient() (*http.Client, error) {
	cert, err := tls.X509KeyPair(p.adminCert, p.adminKey)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.caCert)
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}},
	}, nil
}

// get fetches url and decodes its JSON into v (nil: only the status counts).
func (n *Node) get(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(b))
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(b, v)
}

func (n *Node) nodeReady(ctx context.Context) error {
	var node struct {
		Status struct {
			Conditions []struct{ Type, Status, Reason, Message string } `json:"conditions"`
		} `json:"status"`
	}
	if err := n.get(ctx, n.Server+"/api/v1/nodes/"+NodeName, &node); err != nil {
		return err
	}
	for _, c := range node.Status.Conditions {
		if c.Type == "Ready" {
			if c.Status == "True" {
				return nil
			}
			return fmt.Errorf("node %s is not Ready: %s: %s", NodeName, c.Reason, c.Message)
		}
	}
	return fmt.Errorf("node %s reports no Ready condition yet", NodeName)
}

func (n *Node) containerRunning(ctx context.Context) error {
	c, err := n.e.API.ContainerInspect(ctx, n.Container)
	if err != nil {
		return fmt.Errorf("node container %s: %w", n.Container, err)
	}
	if c.State == nil || !c.State.Running {
		return fmt.Errorf("node container %s stopped (exit %d): %s", n.Container, exitCode(c.State), n.containerLogTail(ctx))
	}
	return nil
}

func exitCode(s *container.State) int {
	if s == nil {
		return -1
	}
	return s.ExitCode
}

// containerLogs returns the node container's output (containerd and the
// kubelet write there).
func (n *Node) containerLogs(ctx context.Context) ([]byte, error) {
	rc, err := n.e.API.ContainerLogs(ctx, n.Container, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := stdcopy.StdCopy(&buf, &buf, io.LimitReader(rc, 64<<20)); err != nil {
		return buf.Bytes(), err
	}
	return buf.Bytes(), nil
}

func (n *Node) containerLogTail(ctx context.Context) string {
	b, err := n.containerLogs(ctx)
	if err != nil && len(b) == 0 {
		return "no log: " + err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}

// Stop stops everything Start started: the node container (its kubelet,
// containerd and pods go with it), then the control plane and etcd by PID;
// it removes the bridge and the cgroups the node made on the host, and
// keeps the node's output in logs/node.log. It is safe to call twice.
func (n *Node) Stop(ctx context.Context) error {
	if n == nil || n.stopped {
		return nil
	}
	n.stopped = true
	var errs []error
	if b, err := n.containerLogs(ctx); err == nil || len(b) > 0 {
		_ = os.WriteFile(filepath.Join(n.Dir, "logs", "node.log"), b, 0o644)
	}
	if err := n.e.API.ContainerRemove(ctx, n.Container, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !isNotFound(err) {
		errs = append(errs, fmt.Errorf("removing node container %s: %w", n.Container, err))
	}
	for i := len(n.procs) - 1; i >= 0; i-- {
		p := n.procs[i]
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	if err := cleanHost(ctx, n.bridge, n.cgroup); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func isNotFound(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "no such container")
}

// cleanHost removes what a node leaves in the host's shared namespaces: the
// CNI bridge (its network is the host's) and the pod cgroups under its
// cgroup root (the node sees the host's cgroup hierarchies). The pods'
// processes die with the container asynchronously, so a busy cgroup is
// retried for a few seconds.
func cleanHost(ctx context.Context, bridge, cgroup string) error {
	if bridge != "" {
		if _, err := net.InterfaceByName(bridge); err == nil {
			if out, err := exec.CommandContext(ctx, "ip", "link", "delete", bridge).CombinedOutput(); err != nil {
				return fmt.Errorf("removing the node's bridge %s: %v: %s", bridge, err, bytes.TrimSpace(out))
			}
		}
	}
	if cgroup == "" {
		return nil
	}
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var busy error
		for _, r := range roots {
			if err := removeTree(filepath.Join(r, cgroup)); err != nil {
				busy = err
			}
		}
		if busy == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("removing the node's cgroups: %w", busy)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// removeTree removes a cgroup folder and its children, deepest first (a
// cgroup folder is removed with rmdir, never by deleting its files).
func removeTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := syscall.Rmdir(dir); err != nil && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("rmdir %s: %w", dir, err)
	}
	return nil
}

// Sweep removes node containers (and what they left on the host) whose
// starting process is gone, e.g. a test binary that was killed before its
// cleanup ran. A kept node stays while its whole control plane runs; one
// missing a part is stopped.
func Sweep(ctx context.Context, e *engine.Engine) {
	cs, err := e.API.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return
	}
	for _, c := range cs {
		owner, ok := c.Labels[LabelOwner]
		if !ok {
			continue
		}
		if owner == kept {
			if procs := keptProcs(c.Labels[LabelOwner+".pids"]); len(procs) > 0 && allAlive(procs) && c.State == "running" {
				continue
			}
			_ = stopKept(ctx, e, c.ID, c.Labels)
			continue
		}
		pid, _ := strconv.Atoi(owner)
		if pid > 0 && syscall.Kill(pid, 0) == nil {
			continue
		}
		_ = e.API.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		_ = cleanHost(ctx, c.Labels[LabelOwner+".bridge"], c.Labels[LabelOwner+".cgroup"])
	}
}

// kept is LabelOwner's value on a node that outlives its starter.
const kept = "kept"

// keptProc is one control-plane process of a kept node, as its container's
// label records it.
type keptProc struct {
	name string
	pid  int
}

// keptProcs reads LabelOwner.pids: NAME=PID,…
func keptProcs(label string) []keptProc {
	var out []keptProc
	for _, kv := range strings.Split(label, ",") {
		name, p, ok := strings.Cut(kv, "=")
		pid, err := strconv.Atoi(p)
		if ok && err == nil && pid > 1 {
			out = append(out, keptProc{name, pid})
		}
	}
	return out
}

// alive: the process still runs that program (a PID the kernel has since
// given to another program is not it).
func (p keptProc) alive() bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.pid))
	return err == nil && filepath.Base(strings.TrimSuffix(exe, " (deleted)")) == p.name
}

func allAlive(ps []keptProc) bool {
	for _, p := range ps {
		if !p.alive() {
			return false
		}
	}
	return true
}

// stopKept stops a kept node: its container, then its control plane by
// PID (newest first), then what it left on the host.
func stopKept(ctx context.Context, e *engine.Engine, id string, labels map[string]string) error {
	var errs []error
	if err := e.API.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !isNotFound(err) {
		errs = append(errs, fmt.Errorf("removing node container %s: %w", id, err))
	}
	procs := keptProcs(labels[LabelOwner+".pids"])
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		if !p.alive() {
			continue
		}
		_ = syscall.Kill(p.pid, syscall.SIGTERM)
		if err := waitGone(ctx, p, 10*time.Second); err != nil {
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
			if err := waitGone(ctx, p, 5*time.Second); err != nil {
				errs = append(errs, fmt.Errorf("stopping %s (pid %d): %w", p.name, p.pid, err))
			}
		}
	}
	if err := cleanHost(ctx, labels[LabelOwner+".bridge"], labels[LabelOwner+".cgroup"]); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// waitGone waits for a process that is not this one's child to end.
func waitGone(ctx context.Context, p keptProc, timeout time.Duration) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for p.alive() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("still running after %s", timeout)
		case <-tick.C:
		}
	}
	return nil
}

// Borrowed says whether the named cluster's node is one another live
// process started for its own run (a Test's in-cluster stage), which stops
// it when that run ends: its PID, or 0.
func Borrowed(ctx context.Context, e *engine.Engine, cluster string) int {
	f := filters.NewArgs(filters.Arg("label", "k3d.cluster="+cluster), filters.Arg("label", LabelOwner))
	cs, err := e.API.ContainerList(ctx, container.ListOptions{Filters: f})
	if err != nil {
		return 0
	}
	for _, c := range cs {
		pid, _ := strconv.Atoi(c.Labels[LabelOwner])
		if pid > 0 && pid != os.Getpid() && syscall.Kill(pid, 0) == nil {
			return pid
		}
	}
	return 0
}

// StopKept stops the kept node of the named cluster (cluster:delete). It
// reports whether there was one.
func StopKept(ctx context.Context, e *engine.Engine, cluster string) (bool, error) {
	f := filters.NewArgs(filters.Arg("label", "k3d.cluster="+cluster), filters.Arg("label", LabelOwner+"="+kept))
	cs, err := e.API.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return false, fmt.Errorf("listing the nodes of %s: %w", cluster, err)
	}
	var errs []error
	for _, c := range cs {
		errs = append(errs, stopKept(ctx, e, c.ID, c.Labels))
	}
	return len(cs) > 0, errors.Join(errs...)
}

// Run runs kubectl against the node and returns its combined output.
func (n *Node) Run(ctx context.Context, args ...string) (string, error) {
	out, err := n.Command(ctx, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// Command is kubectl against the node, for callers that feed it input.
func (n *Node) Command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, n.Kubectl, append([]string{"--kubeconfig", n.Kubeconfig}, args...)...)
}

// ErrCannotRun means this machine cannot run a node (not root, or host
// tools missing); the wrapped message says what to do.
var ErrCannotRun = errors.New("a Kubernetes node cannot run here")

// CanRun tells whether this process can run a node: it must be root (the
// kubelet manages cgroups and mounts) and the host tools must be installed.
func CanRun() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: it needs root (the kubelet manages cgroups and mounts)", ErrCannotRun)
	}
	if _, err := hostTools(); err != nil {
		return fmt.Errorf("%w: %v", ErrCannotRun, err)
	}
	return nil
}

// DefaultTools is the tools folder users and every test share (the user
// cache's hoist/tools), so the components are built once per machine.
func DefaultTools() string {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	return filepath.Join(cache, "hoist", "tools")
}

// Kubeconfig returns the host path of the admin kubeconfig of the running
// node Hoist started for the named cluster, and false when the cluster's
// nodes are not such a node (a k3d cluster's kubeconfig comes from k3d).
func Kubeconfig(ctx context.Context, e *engine.Engine, cluster string) (string, bool, error) {
	f := filters.NewArgs(filters.Arg("label", "app=k3d"), filters.Arg("label", "k3d.cluster="+cluster), filters.Arg("label", LabelKubeconfig))
	cs, err := e.API.ContainerList(ctx, container.ListOptions{Filters: f})
	if err != nil {
		return "", false, fmt.Errorf("listing the nodes of %s: %w", cluster, err)
	}
	for _, c := range cs {
		if p := c.Labels[LabelKubeconfig]; p != "" {
			if _, err := os.Stat(p); err != nil {
				return "", false, fmt.Errorf("node %s of %s: its kubeconfig: %w", strings.TrimPrefix(c.Names[0], "/"), cluster, err)
			}
			return p, true, nil
		}
	}
	return "", false, nil
}
