package kubenode

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/hoistci/hoist/internal/standin"
	"github.com/hoistci/hoist/pkg/cluster"
	"github.com/hoistci/hoist/pkg/engine"
)

// labelInputs records on the node image what it was made of, so an
// unchanged image is reused instead of imported again.
const labelInputs = "io.hoist.kubenode.inputs"

// nodeImage returns the node image: FROM scratch with the kubelet, Debian's
// containerd, runc and CNI plugins (with the libraries they link), mount
// and a static busybox for the start script. It is imported once per set
// of inputs and reused after.
func nodeImage(ctx context.Context, e *engine.Engine, c Components, host map[string]string) (string, error) {
	files := map[string]string{
		"/usr/bin/kubelet":                 c.Path("kubelet"),
		"/usr/bin/containerd":              host["containerd"],
		"/usr/bin/containerd-shim-runc-v2": host["containerd-shim-runc-v2"],
		"/usr/bin/ctr":                     host["ctr"],
		"/usr/bin/runc":                    host["runc"],
		"/usr/bin/mount":                   host["mount"],
		"/usr/bin/umount":                  host["umount"],
		"/bin/busybox":                     host["busybox"],
		"/usr/lib/cni/bridge":              host["cni/bridge"],
		"/usr/lib/cni/host-local":          host["cni/host-local"],
		"/usr/lib/cni/loopback":            host["cni/loopback"],
	}
	for _, p := range []string{"containerd", "containerd-shim-runc-v2", "ctr", "runc", "mount", "umount", "cni/bridge", "cni/host-local", "cni/loopback"} {
		libs, err := standin.Linked(ctx, host[p])
		if err != nil {
			return "", err
		}
		for _, l := range libs {
			files[l] = l
		}
	}
	links := map[string]string{}
	for _, a := range []string{"sh", "cat", "echo", "ls", "mkdir", "sleep", "test", "ps", "ip", "tr"} {
		links["/bin/"+a] = "busybox"
	}
	// The inputs: every file's path, size and modification time.
	var keys []string
	for k := range files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		st, err := os.Stat(files[k])
		if err != nil {
			return "", fmt.Errorf("node image: %w", err)
		}
		fmt.Fprintf(h, "%s\x00%s\x00%d\x00%d\n", k, files[k], st.Size(), st.ModTime().UnixNano())
	}
	sum := hex.EncodeToString(h.Sum(nil))
	ref := "hoist-kubenode/node:" + Version + "-" + sum[:12]
	if img, err := e.API.ImageInspect(ctx, ref); err == nil && img.Config != nil && img.Config.Labels[labelInputs] == sum {
		return ref, nil
	}
	_, err := e.ImportRootfs(ctx, ref, engine.Rootfs{
		Files:  files,
		Links:  links,
		Dirs:   []string{"/tmp", "/etc", "/root", "/run", "/var/lib/kubelet", "/var/lib/containerd", "/var/log", "/proc", "/sys", "/dev"},
		Env:    []string{"PATH=/usr/bin:/bin", "CONTAINERD_NAMESPACE=k8s.io"},
		Labels: map[string]string{labelInputs: sum},
	})
	if err != nil {
		return "", fmt.Errorf("making the node image: %w", err)
	}
	return ref, nil
}

// pauseImage saves the sandbox ("pause") image every pod starts with to
// path: FROM scratch with a static busybox sleeping forever (no pull).
func pauseImage(ctx context.Context, e *engine.Engine, busybox, path string) error {
	if _, err := e.API.ImageInspect(ctx, pauseRef); err != nil {
		if err := importPause(ctx, e, busybox); err != nil {
			return fmt.Errorf("making the pause image: %w", err)
		}
	}
	rc, err := e.API.ImageSave(ctx, []string{pauseRef})
	if err != nil {
		return fmt.Errorf("saving the pause image: %w", err)
	}
	defer rc.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		return fmt.Errorf("saving the pause image: %w", err)
	}
	return f.Close()
}

// importPause imports the pause image: busybox alone, sleeping forever as
// its entrypoint (the CRI refuses a sandbox image without one).
func importPause(ctx context.Context, e *engine.Engine, busybox string) error {
	b, err := os.ReadFile(busybox)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(b))},
	} {
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
	}
	if _, err := tw.Write(b); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	_, err = e.Import(ctx, &buf, pauseRef, []string{`ENTRYPOINT ["/bin/busybox", "sleep", "infinity"]`})
	return err
}

// kernelDefaults are the kernel settings the kubelet insists on. They are
// global to the machine, so the node shows the kubelet files holding these
// values (bind-mounted over /proc/sys in its own mount namespace) instead of
// letting it change the host's.
var kernelDefaults = map[string]string{
	"vm/overcommit_memory":      "1",
	"vm/panic_on_oom":           "0",
	"kernel/panic":              "10",
	"kernel/panic_on_oops":      "1",
	"kernel/keys/root_maxkeys":  "1000000",
	"kernel/keys/root_maxbytes": "25000000",
}

// writeNodeFiles writes the node's configuration into Dir/node, which the
// node container mounts read-only at /etc/hoist-node.
func (n *Node) writeNodeFiles(ctx context.Context, p *pki, kubeletPort int) error {
	dir := filepath.Join(n.Dir, "node")
	host, _ := hostTools()
	if err := pauseImage(ctx, n.e, host["busybox"], filepath.Join(dir, "pause.tar")); err != nil {
		return err
	}
	subnet := fmt.Sprintf("10.%d.%d.0/24", 200+int(n.bridge[2])%50, int(n.bridge[3])*16%256+int(n.bridge[4])%16)
	containerd := fmt.Sprintf(`version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = [
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/%s"
  # Lowering oom_score_adj needs CAP_SYS_RESOURCE, which some machines lack.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/hoist-node/cni"
`, pauseRef)
	// No gateway and no masquerading: pods reach each other on the bridge,
	// and nothing on the host (forwarding, NAT rules) changes.
	cni := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "hoist",
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": false, "ipMasq": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]]}}
  ]
}
`, n.bridge, subnet)
	kubelet := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: %d
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: /etc/hoist-node/ca.crt}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupRoot: %s
failSwapOn: false
failCgroupV1: false
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
# The loaded images are all there is (nothing can be pulled): never
# collect them, and never evict for disk pressure.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "1Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%", imagefs.inodesFree: "1%%"}
resolvConf: /etc/resolv.conf
serializeImagePulls: false
`, kubeletPort, n.cgroup)
	var sysctl string
	var keys []string
	for k := range kernelDefaults {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := "sysctl/" + filepathSafe(k)
		if err := os.MkdirAll(filepath.Join(dir, "sysctl"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte(kernelDefaults[k]+"\n"), 0o644); err != nil {
			return err
		}
		sysctl += fmt.Sprintf("mount --bind -o ro /etc/hoist-node/%s /proc/sys/%s\n", f, k)
	}
	start := `#!/bin/sh
# The node: containerd, then the kubelet as the container's main process.
set -eu
` + sysctl + `
# Pods' cgroups go under the node's own root in the host's hierarchies; a
# new cpuset starts empty, so it gets the root's CPUs and memory nodes.
for d in /sys/fs/cgroup/*; do
  [ -d "$d" ] && [ ! -L "$d" ] && mkdir -p "$d` + n.cgroup + `"
done
if [ -f /sys/fs/cgroup/cpuset/cpuset.cpus ]; then
  cat /sys/fs/cgroup/cpuset/cpuset.cpus >/sys/fs/cgroup/cpuset` + n.cgroup + `/cpuset.cpus
  cat /sys/fs/cgroup/cpuset/cpuset.mems >/sys/fs/cgroup/cpuset` + n.cgroup + `/cpuset.mems
fi
mkdir -p /run/containerd /var/lib/kubelet /var/log/pods
# The kubelet reads the users and groups (for user namespaces).
echo 'root:x:0:0:root:/root:/bin/sh' >/etc/passwd
echo 'root:x:0:' >/etc/group
containerd --config /etc/hoist-node/containerd.toml &
i=0
until ctr version >/dev/null 2>&1; do
  i=$((i+1))
  [ "$i" -lt 600 ] || { echo "containerd did not answer within 60s" >&2; exit 1; }
  sleep 0.1
done
ctr -n k8s.io images import /etc/hoist-node/pause.tar >/dev/null
exec kubelet --config=/etc/hoist-node/kubelet.yaml --kubeconfig=/etc/hoist-node/kubeconfig \
  --hostname-override=` + NodeName + ` --node-labels=` + cluster.NodeContainerLabel + `=` + n.Container + ` --v=1
`
	files := map[string][]byte{
		"containerd.toml":       []byte(containerd),
		"cni/10-hoist.conflist": []byte(cni),
		"kubelet.yaml":          []byte(kubelet),
		"kubeconfig":            p.kubeconfig(n.Server, n.Cluster),
		"ca.crt":                p.caCert,
		"start.sh":              []byte(start),
	}
	for name, b := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func filepathSafe(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '/' {
			b[i] = '_'
		}
	}
	return string(b)
}

// labels are the node container's: k3d's for a server, and Hoist's for
// cleaning up after it (who owns it; for a kept node, its control plane's
// PIDs).
func (n *Node) labels() map[string]string {
	l := map[string]string{
		"app":                  "k3d",
		"k3d.cluster":          n.Cluster,
		"k3d.role":             "server",
		LabelOwner:             strconv.Itoa(os.Getpid()),
		LabelOwner + ".bridge": n.bridge,
		LabelOwner + ".cgroup": n.cgroup,
		LabelKubeconfig:        n.Kubeconfig,
	}
	if n.keep {
		var pids []string
		for _, p := range n.procs {
			// The program's own name, as /proc/PID/exe will show it.
			exe, err := filepath.EvalSymlinks(p.cmd.Path)
			if err != nil {
				exe = p.cmd.Path
			}
			pids = append(pids, fmt.Sprintf("%s=%d", filepath.Base(exe), p.cmd.Process.Pid))
		}
		l[LabelOwner], l[LabelOwner+".pids"] = kept, strings.Join(pids, ",")
	}
	return l
}

// startContainer runs the node container, labelled as k3d labels a server.
func (n *Node) startContainer(ctx context.Context, img string) error {
	rt := ""
	if info, err := n.e.API.Info(ctx); err == nil {
		if _, ok := info.Runtimes[Runtime]; ok {
			rt = Runtime
		}
	}
	_, err := n.e.API.ContainerCreate(ctx, &container.Config{
		Image:  img,
		Cmd:    []string{"/bin/sh", "/etc/hoist-node/start.sh"},
		Labels: n.labels(),
	}, &container.HostConfig{
		Runtime:     rt,
		Privileged:  true,
		NetworkMode: "host",
		// containerd's overlay snapshots cannot sit on the container's own
		// overlay root.
		Tmpfs: map[string]string{"/var/lib/containerd": "", "/run": "", "/tmp": ""},
		Binds: []string{filepath.Join(n.Dir, "node") + ":/etc/hoist-node:ro"},
	}, nil, nil, n.Container)
	if err != nil {
		return fmt.Errorf("creating node container %s: %w", n.Container, err)
	}
	if err := n.e.API.ContainerStart(ctx, n.Container, container.StartOptions{}); err != nil {
		hint := ""
		if rt == "" {
			hint = ": if the engine refuses privileged containers (unable to apply caps), run `sudo bash scripts/engine-up.sh --for-tests` to register the " + Runtime + " runtime"
		}
		return fmt.Errorf("starting node container %s: %w%s", n.Container, err, hint)
	}
	return nil
}
