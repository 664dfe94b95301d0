package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hoistci/hoist/pkg/lock"
)

// InClusterOptions describe the in-cluster stage.
type InClusterOptions struct {
	Kubeconfig string // the cluster's kubeconfig
	// Kubectl is the kubectl to run (default: kubectl from PATH). Its
	// folder also goes first on the test command's PATH, so a test that
	// runs kubectl gets the same one.
	Kubectl   string
	Manifests string            // folder of *.yaml manifests (infra/k8s)
	Refs      map[string]string // plan image name -> engine reference
	Test      []string          // command run once everything is ready (in Dir, KUBECONFIG set)
	Dir       string            // working folder of Test (the repository root)
	Timeout   time.Duration     // for each wait (default 2m)
	WorkDir   string            // resolved manifests and pod logs go here
	// LockPath, when set, gets the result recorded for every image the
	// manifests ran, as the tested image IDs of ImageIDs (name -> ID).
	LockPath string
	ImageIDs map[string]string
	// Nodes, when set, are the node containers the images were loaded
	// into; a kubeconfig whose API server has none of them is refused.
	Nodes []string
	// Alive, when set, is asked while waiting for the workloads and fails
	// the wait when the cluster's nodes are gone (e.g. a node container
	// that died), instead of waiting out the timeout.
	Alive func(context.Context) error
}

// InClusterResult says what ran.
type InClusterResult struct {
	Images  []string // plan images the manifests run
	PodLogs string   // file of pod logs, written on failure
}

// ErrNoKubectl means kubectl is not installed.
var ErrNoKubectl = errors.New("kubectl is not installed: install it (https://kubernetes.io/docs/tasks/tools/) to run the in-cluster tests")

// InCluster applies the manifests with image references resolved to the
// just-built images, waits for their workloads, runs the configured test
// and, on failure, saves the pods' descriptions and logs. With o.LockPath
// set, the outcome is recorded in the lock for each image that ran.
func InCluster(ctx context.Context, o InClusterOptions) (InClusterResult, error) {
	start := time.Now()
	res, err := inCluster(ctx, o)
	if o.LockPath == "" || ctx.Err() != nil || len(res.Images) == 0 {
		return res, err
	}
	rec := lock.Test{Passed: err == nil, Log: res.PodLogs, Duration: time.Since(start).Round(time.Millisecond).String(), At: time.Now().UTC()}
	if rerr := lock.UpdateContext(ctx, o.LockPath, func(l *lock.Lock) error {
		for _, n := range res.Images {
			if img, ok := l.Find(n); ok {
				t := rec
				t.ImageID = o.ImageIDs[n]
				img.Cluster = &t
			}
		}
		return nil
	}); rerr != nil && err == nil {
		err = rerr
	}
	return res, err
}

func inCluster(ctx context.Context, o InClusterOptions) (InClusterResult, error) {
	var res InClusterResult
	kubectl, err := kubectlPath(o.Kubectl)
	if err != nil {
		return res, err
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	out := filepath.Join(o.WorkDir, "manifests")
	objs, err := resolveDir(o.Manifests, o.Refs, out)
	if err != nil {
		return res, err
	}
	used := map[string]bool{}
	for _, ob := range objs {
		for _, n := range ob.Images {
			used[n] = true
		}
	}
	for n := range used {
		res.Images = append(res.Images, n)
	}
	sort.Strings(res.Images)

	k := kube{bin: kubectl, config: o.Kubeconfig}
	if err := k.reach(ctx, o.Nodes); err != nil {
		return res, err
	}
	fail := func(err error) (InClusterResult, error) {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		res.PodLogs = filepath.Join(o.WorkDir, "cluster-pods.log")
		if perr := k.podLogs(context.WithoutCancel(ctx), objs, res.PodLogs); perr != nil {
			res.PodLogs = ""
			return res, fmt.Errorf("%w (saving the pod logs failed too: %v)", err, perr)
		}
		return res, fmt.Errorf("%w (pod logs: %s)", err, res.PodLogs)
	}
	api, err := apiClient(o.Kubeconfig)
	if err != nil {
		return res, err
	}
	if err := newApplier(o.Kubeconfig, api).apply(ctx, out); err != nil {
		return fail(fmt.Errorf("applying %s: %w", o.Manifests, err))
	}
	for _, ob := range objs {
		if err := k.wait(ctx, ob, o.Timeout, o.Alive); err != nil {
			return fail(err)
		}
	}
	if len(o.Test) > 0 {
		bin := o.Test[0]
		if bin == "kubectl" {
			bin = kubectl
		}
		cmd := exec.CommandContext(ctx, bin, o.Test[1:]...)
		cmd.Dir = o.Dir
		cmd.Env = append(withPathFirst(os.Environ(), filepath.Dir(kubectl)), "KUBECONFIG="+o.Kubeconfig)
		b, err := cmd.CombinedOutput()
		if err != nil {
			return fail(fmt.Errorf("in-cluster test %s failed: %v\n%s", strings.Join(o.Test, " "), err, tail(b)))
		}
	}
	return res, nil
}

// withPathFirst returns env with dir first on its PATH.
func withPathFirst(env []string, dir string) []string {
	out := make([]string, 0, len(env)+1)
	path := dir
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = dir + string(os.PathListSeparator) + v
			continue
		}
		out = append(out, kv)
	}
	return append(out, "PATH="+path)
}

// resolveDir resolves every manifest of dir (*.yaml, *.yml) into out and
// returns their objects.
func resolveDir(dir string, refs map[string]string, out string) ([]Object, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	more, _ := filepath.Glob(filepath.Join(dir, "*.yml"))
	files = append(files, more...)
	sort.Strings(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("no manifests (*.yaml) in %s: add the workloads to test, or set cluster.manifests in hoist.yaml", dir)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	// out is applied whole: a manifest resolved by an earlier run whose
	// source is gone now must not be applied again.
	keep := map[string]bool{}
	for _, f := range files {
		keep[filepath.Base(f)] = true
	}
	for _, pat := range []string{"*.yaml", "*.yml"} {
		old, _ := filepath.Glob(filepath.Join(out, pat))
		for _, p := range old {
			if !keep[filepath.Base(p)] {
				if err := os.Remove(p); err != nil {
					return nil, fmt.Errorf("removing the stale resolved manifest %s: %w", p, err)
				}
			}
		}
	}
	var objs []Object
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		r, err := Resolve(f, data, refs)
		if err != nil {
			return nil, err
		}
		objs = append(objs, r.Objects...)
		if err := os.WriteFile(filepath.Join(out, filepath.Base(f)), r.Data, 0o644); err != nil {
			return nil, err
		}
	}
	return objs, nil
}

// kubectlPath is o's kubectl, or the one on PATH.
func kubectlPath(bin string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	p, err := exec.LookPath("kubectl")
	if err != nil {
		return "", ErrNoKubectl
	}
	return p, nil
}

type kube struct{ bin, config string }

func (k kube) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, k.bin, append([]string{"--kubeconfig", k.config}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.Bytes(), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, tail(out.Bytes()))
	}
	return out.Bytes(), nil
}

func ns(o Object) []string {
	if o.Namespace == "" {
		return nil
	}
	return []string{"-n", o.Namespace}
}

// podLogs writes the pods' state, descriptions and logs of every namespace
// the manifests touch.
func (k kube) podLogs(ctx context.Context, objs []Object, path string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	seen := map[string]bool{}
	var buf bytes.Buffer
	for _, o := range objs {
		if seen[o.Namespace] {
			continue
		}
		seen[o.Namespace] = true
		n := ns(o)
		for _, args := range [][]string{{"get", "pods", "-o", "wide"}, {"describe", "pods"}} {
			fmt.Fprintf(&buf, "### kubectl %s %s\n", strings.Join(args, " "), strings.Join(n, " "))
			b, _ := k.run(ctx, append(args, n...)...)
			buf.Write(b)
		}
		names, _ := k.run(ctx, append([]string{"get", "pods", "-o", "name"}, n...)...)
		for _, p := range strings.Fields(string(names)) {
			fmt.Fprintf(&buf, "### kubectl logs %s\n", p)
			b, _ := k.run(ctx, append([]string{"logs", p, "--all-containers", "--prefix"}, n...)...)
			buf.Write(b)
		}
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func tail(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}
