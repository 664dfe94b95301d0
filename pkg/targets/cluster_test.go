package targets

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistci/hoist/internal/kubenode"
	"github.com/hoistci/hoist/internal/kubenode/nodetest"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/lock"
)

// clusterRepo is testRepo with a cluster section and manifests in
// infra/k8s: a Deployment of image good the test execs into, and a Job of
// image other running job.
func clusterRepo(t *testing.T, dir, project, cluster, job string) {
	t.Helper()
	testRepo(t, dir, project, "cluster: {name: "+cluster+", timeout: 2m, test: [kubectl, exec, deploy/good, --, cat, /hi]}\n")
	testenv.WriteFiles(t, dir, map[string]string{"infra/k8s/app.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: good}
spec:
  replicas: 1
  selector: {matchLabels: {app: good}}
  template:
    metadata: {labels: {app: good}}
    spec:
      containers:
      - {name: good, image: good, imagePullPolicy: Never, command: [sleep, "3600"]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: other}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: other, image: other, imagePullPolicy: Never, command: [sh, -c, '` + job + `']}
`})
}

// TestTestRunsInClusterStage runs Test with a cluster configured. Where k3s
// cannot run (this machine class) the stage runs on a real Kubernetes node
// Hoist starts itself: the images are loaded, the manifests applied with
// the just-built references, the Deployment rolled out, the Job completed
// and the configured test run; the lock records it. A failing Job fails
// the target with its exit code and log, and the pod logs are saved.
//
// Classic engine only: the modern engine's runc (1.2.6) runs privileged
// containers without the hoist-runc runtime (it leaves out what the
// bounding set lacks), so there the probe says k3s can run and the stage
// takes k3d's path, which needs the k3s image and runs in the GitHub
// workflow. The node itself runs on both engines (pkg/cluster's real-node
// tests, TestClusterReloadTarget).
func TestTestRunsInClusterStage(t *testing.T) {
	e := testenv.Engine(t)
	if err := kubenode.CanRun(); err != nil {
		testenv.Need(t, err.Error())
	}
	ctx := context.Background()
	dir := t.TempDir()
	project := testenv.Unique("hoistkube")
	t.Cleanup(func() {
		for _, r := range []string{"/good:0.4.0", "/other:0.4.0", "/busybox:1"} {
			e.Remove(context.Background(), project+r)
		}
	})
	name := testenv.Unique("hoist-k-")
	clusterRepo(t, dir, project, name, "cat /hi; echo job done")
	out, err := captureOut(t, func() error { return Test(ctx) })
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "in-cluster stage skipped") || !strings.Contains(out, "in-cluster tests passed (2 images)") {
		t.Errorf("want the in-cluster stage to run and pass, got:\n%s", out)
	}
	l, err := lock.Read(filepath.Join(dir, "build", "hoist", "lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"good", "other"} {
		img, _ := l.Find(n)
		if img == nil || img.Cluster == nil || !img.Cluster.Passed || img.Cluster.ImageID != img.ImageID {
			t.Errorf("%s: lock records the in-cluster test as %+v", n, img.Cluster)
		}
	}
	if left, _ := e.API.ContainerInspect(ctx, "k3d-"+name+"-server-0"); left.ContainerJSONBase != nil {
		t.Errorf("the node container is still there after Test")
	}

	// The Job fails: its exit code and the end of its log are in the error,
	// and the pods' descriptions and logs are saved and named.
	clusterRepo(t, dir, project, name, "echo the job broke; exit 3")
	_, err = captureOut(t, func() error { return Test(ctx) })
	if err == nil || !strings.Contains(err.Error(), "job other failed: container other of pod other-") ||
		!strings.Contains(err.Error(), "exited with code 3") || !strings.Contains(err.Error(), "the job broke") {
		t.Fatalf("got %v, want the Job's exit code and log", err)
	}
	logs := filepath.Join(dir, "build", "hoist", "cluster", "cluster-pods.log")
	if !strings.Contains(err.Error(), logs) {
		t.Errorf("error does not name the pod logs %s: %v", logs, err)
	}
	if b, _ := os.ReadFile(logs); !strings.Contains(string(b), "the job broke") || !strings.Contains(string(b), "kubectl describe pods") {
		t.Errorf("pod logs %s:\n%s", logs, b)
	}
}

// TestClusterReloadTarget is the dev loop in one command against a running
// real node: after an edit to one image's context, cluster:reload sends
// only that image and the Deployment running it runs its new config.
func TestClusterReloadTarget(t *testing.T) { testenv.EachEngine(t, testClusterReloadTarget) }

func testClusterReloadTarget(t *testing.T) {
	e := testenv.Engine(t)
	node := nodetest.Start(t, e)
	ctx := context.Background()
	dir := t.TempDir()
	project := testenv.Unique("hoistreload")
	t.Cleanup(func() {
		for _, r := range []string{"/good:0.4.0", "/other:0.4.0", "/busybox:1", "/solo:0.4.0"} {
			e.Remove(context.Background(), project+r)
		}
	})
	testRepo(t, dir, project, "cluster: {name: "+node.Cluster+", timeout: 2m}\n")
	// A third image with a context of its own, which the Deployment runs.
	b, _ := os.ReadFile(filepath.Join(dir, "hoist.yaml"))
	conf := strings.Replace(string(b), "images:\n", "images:\n  - name: solo\n    context: solo\n    dockerfile: solo/Dockerfile\n    test: {command: [cat, /v]}\n", 1)
	testenv.WriteFiles(t, dir, map[string]string{
		"hoist.yaml":      conf,
		"solo/Dockerfile": "FROM " + project + "/busybox:1\nCOPY v /v\n",
		"solo/v":          "1\n",
		"infra/k8s/app.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: solo}
spec:
  selector: {matchLabels: {app: solo}}
  template:
    metadata: {labels: {app: solo}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: solo, image: solo, imagePullPolicy: Never, command: [sleep, "3600"]}
`,
	})
	runs := func(want string) {
		t.Helper()
		// The dev loop returns on the kubelet's Started event; the pod's
		// status follows at its next relist (kubectl wait watches).
		node.Run(ctx, "wait", "pod", "-l", "app=solo", "--for=jsonpath={.status.containerStatuses[0].imageID}="+want, "--timeout=30s")
		out, err := node.Run(ctx, "get", "pods", "-l", "app=solo", "-o", `jsonpath={range .items[*]}{.metadata.deletionTimestamp}{"|"}{.status.containerStatuses[0].imageID}{"\n"}{end}`)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if del, id, _ := strings.Cut(line, "|"); del == "" && strings.HasSuffix(id, want) {
				return
			}
		}
		t.Errorf("no live pod of solo runs %s:\n%s", want, out)
	}
	solo := func() string {
		l, err := lock.Read(filepath.Join(dir, "build", "hoist", "lock.json"))
		if err != nil {
			t.Fatal(err)
		}
		img, _ := l.Find("solo")
		return img.ConfigDigest
	}

	out, err := captureOut(t, func() error { return Cluster{}.Reload(ctx) })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "3 sent") || !strings.Contains(out, "restarted deployment/solo") {
		t.Errorf("first reload: %s", out)
	}
	runs(solo())

	os.WriteFile(filepath.Join(dir, "solo", "v"), []byte("2\n"), 0o644)
	out, err = captureOut(t, func() error { return Cluster{}.Reload(ctx) })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "restarted deployment/solo") {
		t.Errorf("reload after one edit: %s", out)
	}
	runs(solo())

}

// TestClusterCreateKeepsANode: where k3s cannot run, cluster:create starts
// a Kubernetes node under the cluster's name that outlives the command
// (its own process has exited); Test's in-cluster stage then runs on it and
// leaves it running, other runs' sweeps leave it, and cluster:delete stops
// its container and control plane. Classic engine: see
// TestTestRunsInClusterStage.
func TestClusterCreateKeepsANode(t *testing.T) {
	e := testenv.Engine(t)
	if err := kubenode.CanRun(); err != nil {
		testenv.Need(t, err.Error())
	}
	ctx := context.Background()
	dir := t.TempDir()
	project := testenv.Unique("hoistkeep")
	name := testenv.Unique("hoist-keep-")
	t.Cleanup(func() {
		kubenode.StopKept(context.Background(), e, name)
		for _, r := range []string{"/good:0.4.0", "/other:0.4.0", "/busybox:1"} {
			e.Remove(context.Background(), project+r)
		}
	})
	clusterRepo(t, dir, project, name, "cat /hi; echo job done")
	child := func(target string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "HOIST_CONFIG="+filepath.Join(dir, "hoist.yaml"), childEnv+"="+target)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", target, err, out)
		}
		return string(out)
	}
	out := child("cluster:create")
	if !strings.Contains(out, "kept running") {
		t.Fatalf("cluster:create: %s", out)
	}
	container := "k3d-" + name + "-server-0"
	c, err := e.API.ContainerInspect(ctx, container)
	if err != nil || !c.State.Running {
		t.Fatalf("after cluster:create exited, node %s: %v", container, err)
	}
	pids := strings.Split(c.Config.Labels[kubenode.LabelOwner+".pids"], ",")
	if len(pids) != 4 {
		t.Fatalf("control plane pids %v", pids)
	}
	kc := filepath.Join(dir, "build", "hoist", "cluster-node", "kubeconfig")
	comps, err := kubenode.EnsureComponents(ctx, kubenode.EnsureOptions{Tools: kubenode.DefaultTools()})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, comps.Path("kubectl"), "--kubeconfig", kc, "get", "nodes").CombinedOutput(); err != nil || !strings.Contains(string(out), "Ready") {
		t.Fatalf("kubectl get nodes on the kept node: %v\n%s", err, out)
	}
	// Test runs its in-cluster stage on the kept node and leaves it running.
	out, err = captureOut(t, func() error { return Test(ctx) })
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if strings.Contains(out, "is Ready in") || !strings.Contains(out, "in-cluster tests passed (2 images)") {
		t.Errorf("want the stage on the kept node, got:\n%s", out)
	}
	if c, err := e.API.ContainerInspect(ctx, container); err != nil || !c.State.Running {
		t.Fatalf("the kept node stopped after Test: %v", err)
	}
	// Run again: cluster:create finds it.
	if out := child("cluster:create"); !strings.Contains(out, "cluster "+name+" exists") {
		t.Errorf("second cluster:create: %s", out)
	}
	out = child("cluster:delete")
	if !strings.Contains(out, "deleted") {
		t.Errorf("cluster:delete: %s", out)
	}
	if _, err := e.API.ContainerInspect(ctx, container); err == nil {
		t.Errorf("node container %s is still there", container)
	}
	for _, p := range pids {
		_, pid, _ := strings.Cut(p, "=")
		if _, err := os.Stat("/proc/" + pid + "/exe"); err == nil {
			if exe, _ := os.Readlink("/proc/" + pid + "/exe"); strings.Contains(p, filepath.Base(exe)) {
				t.Errorf("control plane process %s still runs after cluster:delete", p)
			}
		}
	}
}

// TestTestRefusesANodeAnotherRunOwns: a cluster whose node another live
// run started for its own tests (and will stop when it ends) is not used
// by a second run of the same cluster name: one line says whose it is and
// what to do, and nothing is loaded into it.
func TestTestRefusesANodeAnotherRunOwns(t *testing.T) {
	e := testenv.Engine(t)
	ctx := context.Background()
	other := exec.Command("sleep", "600")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	name := testenv.Unique("hoist-owned-")
	base := testenv.BusyboxBase(t, e)
	node := "k3d-" + name + "-server-0"
	if out, err := exec.Command("docker", "run", "-d", "--network", "none", "--name", node,
		"--label", "app=k3d", "--label", "k3d.cluster="+name, "--label", "k3d.role=server",
		"--label", fmt.Sprintf("%s=%d", kubenode.LabelOwner, other.Process.Pid), base, "sleep", "600").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", node).Run() })
	dir := t.TempDir()
	project := testenv.Unique("hoistowned")
	t.Cleanup(func() {
		for _, r := range []string{"/good:0.4.0", "/other:0.4.0", "/busybox:1"} {
			e.Remove(context.Background(), project+r)
		}
	})
	clusterRepo(t, dir, project, name, "true")
	out, err := captureOut(t, func() error { return Test(ctx) })
	want := fmt.Sprintf("cluster %s is a node another run (pid %d) started for its own tests", name, other.Process.Pid)
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v, want one line with %q\n%s", err, want, out)
	}
	if strings.Contains(out, "images in 1 nodes") {
		t.Errorf("images were loaded into another run's node:\n%s", out)
	}
}
