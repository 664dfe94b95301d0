package cluster_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hoistci/hoist/internal/kubenode/nodetest"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/cluster"
	"github.com/hoistci/hoist/pkg/engine"
)

// busyboxImage is a FROM-scratch busybox image under a unique reference, as
// the loader sees it (config digest and layers).
func busyboxImage(t *testing.T, e *engine.Engine) cluster.Image {
	t.Helper()
	ref := testenv.BusyboxBase(t, e)
	img, err := e.Inspect(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := e.ConfigDigest(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return cluster.Image{Ref: ref, ID: cfg, DiffIDs: img.DiffIDs}
}

// TestLoadIntoRealNodeRunsThatImage loads an image into a real Kubernetes
// node found by its k3d labels, then has the kubelet run it: the running
// container's image is exactly the loaded config. A second load sends
// nothing. It runs on both engines: each takes the hoist-runc runtime the
// node needs (scripts/engine-up.sh registers it with both), as do the other
// real-node tests.
func TestLoadIntoRealNodeRunsThatImage(t *testing.T) {
	testenv.EachEngine(t, testLoadIntoRealNodeRunsThatImage)
}

func testLoadIntoRealNodeRunsThatImage(t *testing.T) {
	e := testenv.Engine(t)
	node := nodetest.Start(t, e)
	img := busyboxImage(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	nodes, err := cluster.Nodes(ctx, cluster.Lister(e.API), node.Cluster)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 || nodes[0].Name != node.Container || nodes[0].Role != cluster.RoleServer {
		t.Fatalf("nodes of %s = %+v, want the server %s", node.Cluster, nodes, node.Container)
	}
	res, err := cluster.Load(ctx, e.API, nodes, []cluster.Image{img}, cluster.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sent) != 1 {
		t.Fatalf("first load sent %v, want %s", res.Sent, img.Ref)
	}

	pod := `apiVersion: v1
kind: Pod
metadata: {name: loaded}
spec:
  containers:
  - name: c
    image: ` + img.Ref + `
    imagePullPolicy: Never
    command: [/bin/busybox, sleep, "3600"]
`
	apply := node.Command(ctx, "apply", "-f", "-")
	apply.Stdin = strings.NewReader(pod)
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	if out, err := node.Run(ctx, "wait", "--for=condition=Ready", "pod/loaded", "--timeout=2m"); err != nil {
		desc, _ := node.Run(ctx, "describe", "pod/loaded")
		t.Fatalf("%v\n%s\n%s", err, out, desc)
	}
	got, err := node.Run(ctx, "get", "pod/loaded", "-o", "jsonpath={.status.containerStatuses[0].imageID}")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(got, img.ID) {
		t.Errorf("the running container's image ID is %q, want the loaded config %s", got, img.ID)
	}

	again, err := cluster.Load(ctx, e.API, nodes, []cluster.Image{img}, cluster.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Sent) != 0 || again.Blobs != 0 {
		t.Errorf("second load sent %v (%d blobs), want nothing", again.Sent, again.Blobs)
	}
}

// TestInClusterFailuresOnRealNode: each way the in-cluster stage fails on a
// real node ends in one line saying what happened, where.
func TestInClusterFailuresOnRealNode(t *testing.T) {
	testenv.EachEngine(t, testInClusterFailuresOnRealNode)
}

func testInClusterFailuresOnRealNode(t *testing.T) {
	e := testenv.Engine(t)
	node := nodetest.Start(t, e)
	img := busyboxImage(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	nodes, err := cluster.Nodes(ctx, cluster.Lister(e.API), node.Cluster)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.Load(ctx, e.API, nodes, []cluster.Image{img}, cluster.LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	// notLoaded is built by the plan but never loaded into the node.
	notLoaded := testenv.Unique("hoist-test/never-loaded:")
	refs := map[string]string{"box": img.Ref, "missing": notLoaded}
	alive := func(ctx context.Context) error {
		_, err := cluster.Nodes(ctx, cluster.Lister(e.API), node.Cluster)
		return err
	}
	run := func(t *testing.T, manifest string, timeout time.Duration) (cluster.InClusterResult, error) {
		t.Helper()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "m.yaml"), []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
		return cluster.InCluster(ctx, cluster.InClusterOptions{
			Kubeconfig: node.Kubeconfig, Kubectl: node.Kubectl, Manifests: dir, Refs: refs,
			WorkDir: t.TempDir(), Timeout: timeout, Nodes: []string{node.Container}, Alive: alive,
		})
	}
	oneLine := func(t *testing.T, err error, want ...string) {
		t.Helper()
		if err == nil {
			t.Fatalf("got no error, want one saying %q", want)
		}
		t.Log(err)
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not say %q", err, w)
			}
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("error is not one line: %q", err)
		}
	}
	job := func(name, image, script string) string {
		return `apiVersion: batch/v1
kind: Job
metadata: {name: ` + name + `}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: main, image: ` + image + `, imagePullPolicy: Never, command: [/bin/busybox, sh, -c, '` + script + `']}
`
	}

	t.Run("job fails", func(t *testing.T) {
		res, err := run(t, job("fails", "box", "echo out of cheese; exit 7"), 2*time.Minute)
		oneLine(t, err, "job fails failed: container main of pod fails-", "exited with code 7", "out of cheese", "pod logs: ")
		if b, _ := os.ReadFile(res.PodLogs); !strings.Contains(string(b), "out of cheese") {
			t.Errorf("pod logs %s lack the job's output:\n%s", res.PodLogs, b)
		}
	})
	t.Run("image not loaded", func(t *testing.T) {
		_, err := run(t, job("unloaded", "missing", "true"), 2*time.Minute)
		oneLine(t, err, "image "+notLoaded+" was not loaded into node "+node.Container)
	})
	t.Run("never ready", func(t *testing.T) {
		_, err := run(t, `apiVersion: apps/v1
kind: Deployment
metadata: {name: crashes}
spec:
  selector: {matchLabels: {app: crashes}}
  template:
    metadata: {labels: {app: crashes}}
    spec:
      containers:
      - name: main
        image: box
        imagePullPolicy: Never
        command: [/bin/busybox, sleep, "3600"]
        readinessProbe:
          exec: {command: [/bin/busybox, "false"]}
          periodSeconds: 1
`, 15*time.Second)
		oneLine(t, err, "deployment crashes was not ready within 15s: last events: crashes-", "Readiness probe failed")
	})
	t.Run("refused by the API server", func(t *testing.T) {
		// Parses, but its selector does not match its template's labels.
		_, err := run(t, `apiVersion: v1
kind: ConfigMap
metadata: {name: fine}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: mismatched}
spec:
  selector: {matchLabels: {app: one}}
  template:
    metadata: {labels: {app: other}}
    spec:
      containers:
      - {name: main, image: box, imagePullPolicy: Never, command: [/bin/busybox, sleep, "3600"]}
`, 30*time.Second)
		oneLine(t, err, "applying ", "m.yaml: deployment mismatched: ", "selector", "pod logs: ")
	})
	t.Run("another cluster's kubeconfig", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "m.yaml"), []byte(job("elsewhere", "box", "true")), 0o644)
		_, err := cluster.InCluster(ctx, cluster.InClusterOptions{
			Kubeconfig: node.Kubeconfig, Kubectl: node.Kubectl, Manifests: dir, Refs: refs,
			WorkDir: t.TempDir(), Nodes: []string{"k3d-other-server-0"},
		})
		oneLine(t, err, "kubeconfig "+node.Kubeconfig+" is for another cluster", node.Server, "k3d-other-server-0")
	})
	// Last: the node dies while the stage waits for a Job that never ends.
	t.Run("node dies", func(t *testing.T) {
		killCtx, stopKiller := context.WithCancel(ctx)
		started := make(chan error, 1)
		go func() {
			ctx := killCtx
			// Kill the node once the Job's pod runs.
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for range tick.C {
				out, err := node.Run(ctx, "get", "pods", "-l", "job-name=forever", "-o", "jsonpath={.items[*].status.phase}")
				if err != nil || ctx.Err() != nil {
					started <- err
					return
				}
				if strings.Contains(out, "Running") {
					started <- e.API.ContainerKill(ctx, node.Container, "KILL")
					return
				}
			}
		}()
		_, err := run(t, job("forever", "box", "sleep 3600"), 5*time.Minute)
		stopKiller()
		if kerr := <-started; kerr != nil {
			t.Fatalf("killing the node: %v (the stage returned %v)", kerr, err)
		}
		oneLine(t, err, "waiting for job forever: ", node.Container, "not running")
	})
}

// TestReloadRestartsWorkloadsOnRealNode is the dev loop on a real node:
// one image changes under the same tag; the reload sends only it, and
// Restart has the Deployment and the Job that run it run the new content
// (the running container's image ID is the new config digest).
func TestReloadRestartsWorkloadsOnRealNode(t *testing.T) {
	testenv.EachEngine(t, testReloadRestartsWorkloadsOnRealNode)
}

func testReloadRestartsWorkloadsOnRealNode(t *testing.T) {
	e := testenv.Engine(t)
	node := nodetest.Start(t, e)
	bb := testenv.Binary(t, "busybox", "busybox-static")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ref := testenv.Unique("hoist-test/devloop:")
	other := busyboxImage(t, e)
	t.Cleanup(func() { e.Remove(context.Background(), ref) })
	build := func(version string) cluster.Image {
		t.Helper()
		f := filepath.Join(t.TempDir(), "version")
		os.WriteFile(f, []byte(version+"\n"), 0o644)
		r := engine.BusyboxRootfs(bb)
		r.Files["/version"] = f
		if _, err := e.ImportRootfs(ctx, ref, r); err != nil {
			t.Fatal(err)
		}
		img, err := e.Inspect(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := e.ConfigDigest(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		return cluster.Image{Ref: ref, ID: cfg, DiffIDs: img.DiffIDs}
	}
	manifests := t.TempDir()
	// app stops on SIGTERM, as servers do: its container is restarted in
	// place. stubborn ignores SIGTERM (a shell's sleep as PID 1) and keeps
	// the default 30 s grace period: it is rolled out instead.
	os.WriteFile(filepath.Join(manifests, "app.yaml"), []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - {name: app, image: app, imagePullPolicy: Never, command: [/bin/busybox, sh, -c, "trap 'exit 0' TERM; sleep 3600 & wait"]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: check}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: check, image: app, imagePullPolicy: Never, command: [/bin/busybox, cat, /version]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: stubborn}
spec:
  selector: {matchLabels: {app: stubborn}}
  template:
    metadata: {labels: {app: stubborn}}
    spec:
      containers:
      - {name: s, image: app, imagePullPolicy: Never, command: [/bin/busybox, sleep, "3600"]}
---
# probed is ready only once its readiness probe passes: the in-place
# restart waits for the pod to report ready, not for the kubelet's events.
apiVersion: apps/v1
kind: Deployment
metadata: {name: probed}
spec:
  selector: {matchLabels: {app: probed}}
  template:
    metadata: {labels: {app: probed}}
    spec:
      containers:
      - name: p
        image: app
        imagePullPolicy: Never
        command: [/bin/busybox, sh, -c, "trap 'exit 0' TERM; sleep 3600 & wait"]
        readinessProbe:
          exec: {command: [/bin/busybox, test, -e, /version]}
          periodSeconds: 1
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: state}
spec:
  serviceName: state
  selector: {matchLabels: {app: state}}
  template:
    metadata: {labels: {app: state}}
    spec:
      containers:
      - {name: st, image: app, imagePullPolicy: Never, command: [/bin/busybox, sh, -c, "trap 'exit 0' TERM; sleep 3600 & wait"]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: daemon}
spec:
  selector: {matchLabels: {app: daemon}}
  template:
    metadata: {labels: {app: daemon}}
    spec:
      containers:
      - {name: d, image: app, imagePullPolicy: Never, command: [/bin/busybox, sh, -c, "trap 'exit 0' TERM; sleep 3600 & wait"]}
---
# settings and untouched's label are edited by hand between reloads: the
# next reload's apply sets them back.
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {greeting: hello}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: untouched, labels: {tier: web}}
spec:
  selector: {matchLabels: {app: untouched}}
  template:
    metadata: {labels: {app: untouched}}
    spec:
      containers:
      - {name: c, image: other, imagePullPolicy: Never, command: [/bin/busybox, sleep, "3600"]}
`), 0o644)
	refs := map[string]string{"app": ref, "other": other.Ref}
	nodes, err := cluster.Nodes(ctx, cluster.Lister(e.API), node.Cluster)
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state.json")
	// One working folder, as the reload target keeps: from the second
	// reload on, the same manifests are applied while the pods are patched.
	work := t.TempDir()
	reload := func(img cluster.Image) ([]string, cluster.LoadResult) {
		t.Helper()
		res, err := cluster.Load(ctx, e.API, nodes, []cluster.Image{img, other}, cluster.LoadOptions{StateFile: state})
		if err != nil {
			t.Fatal(err)
		}
		var changed []string
		for name, r := range refs {
			if slices.Contains(res.Sent, r) {
				changed = append(changed, name)
			}
		}
		done, err := cluster.Restart(ctx, cluster.RestartOptions{
			Kubeconfig: node.Kubeconfig, Kubectl: node.Kubectl, Manifests: manifests, Refs: refs,
			IDs:     map[string]string{"app": img.ID, "other": other.ID},
			Changed: changed, WorkDir: work, Timeout: 2 * time.Minute,
		})
		if err != nil {
			t.Fatal(err)
		}
		return done, res
	}
	type live struct {
		name, uid, imageID string
		restarts           int
	}
	// running is the Deployment's live (not terminating), ready pod.
	running := func(app string) live {
		t.Helper()
		out, err := node.Run(ctx, "get", "pods", "-l", "app="+app, "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var list struct {
			Items []struct {
				Metadata struct {
					Name              string  `json:"name"`
					UID               string  `json:"uid"`
					DeletionTimestamp *string `json:"deletionTimestamp"`
				} `json:"metadata"`
				Status struct {
					ContainerStatuses []struct {
						ImageID      string `json:"imageID"`
						Ready        bool   `json:"ready"`
						RestartCount int    `json:"restartCount"`
					} `json:"containerStatuses"`
				} `json:"status"`
			} `json:"items"`
		}
		json.Unmarshal([]byte(out), &list)
		var found []live
		for _, p := range list.Items {
			if p.Metadata.DeletionTimestamp == nil && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready {
				c := p.Status.ContainerStatuses[0]
				found = append(found, live{p.Metadata.Name, p.Metadata.UID, c.ImageID, c.RestartCount})
			}
		}
		if len(found) != 1 {
			t.Fatalf("want one ready pod of %s, got %v:\n%s", app, found, out)
		}
		return found[0]
	}
	// settled waits (kubectl wait watches) until the pod's status shows the
	// image: an in-place restart returns on the kubelet's Started event,
	// and the status follows at its next relist.
	settled := func(app, id string) {
		t.Helper()
		if out, err := node.Run(ctx, "wait", "pod", "-l", "app="+app, "--for=jsonpath={.status.containerStatuses[0].imageID}="+id, "--timeout=30s"); err != nil {
			t.Fatalf("%s never showed %s: %v: %s", app, id, err, out)
		}
	}
	replicaSets := func(app string) string {
		t.Helper()
		out, err := node.Run(ctx, "get", "replicasets", "-l", "app="+app, "-o", "name")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}

	// field reads one field of an object, as kubectl shows it.
	field := func(obj, path string) string {
		t.Helper()
		out, err := node.Run(ctx, "get", obj, "-o", "jsonpath="+path)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// restarted in place: the same pod (same UID), its container restarted
	// once more, on the new image, ready.
	inPlace := func(app string, was live, id string) {
		t.Helper()
		settled(app, id)
		got := running(app)
		if !strings.HasSuffix(got.imageID, id) || got.uid != was.uid || got.restarts != was.restarts+1 {
			t.Errorf("after the reload %s runs %+v, want pod %s (%s) restarted in place on the new config %s", app, got, was.name, was.uid, id)
		}
	}
	workloads := []string{"deployment/app", "deployment/stubborn", "deployment/probed", "statefulset/state", "daemonset/daemon"}
	restarted := append(slices.Clone(workloads), "job/check")

	v1 := build("1")
	done, _ := reload(v1)
	if want := slices.Concat(workloads, []string{"deployment/untouched", "job/check"}); !slices.Equal(done, want) {
		t.Errorf("first reload restarted %v, want every workload started: %v", done, want)
	}
	if got := running("app"); !strings.HasSuffix(got.imageID, v1.ID) {
		t.Fatalf("app runs %s, want %s", got.imageID, v1.ID)
	}
	app1, stubborn1, untouched := running("app"), running("stubborn"), running("untouched")
	probed1, state1, daemon1 := running("probed"), running("state"), running("daemon")
	rs := replicaSets("app")
	// Hand edits of fields the manifests set.
	if _, err := node.Run(ctx, "patch", "configmap/settings", "-p", `{"data":{"greeting":"edited"}}`); err != nil {
		t.Fatal(err)
	}
	if _, err := node.Run(ctx, "label", "deployment/untouched", "tier=hand", "--overwrite"); err != nil {
		t.Fatal(err)
	}

	v2 := build("2")
	done, res := reload(v2)
	if !slices.Equal(res.Sent, []string{ref}) || res.Blobs != 3 {
		t.Errorf("reload after one change sent %v (%d blobs), want only %s: its layer, config and manifest", res.Sent, res.Blobs, ref)
	}
	if !slices.Equal(done, restarted) {
		t.Errorf("restarted %v, want the workloads and the Job running the changed image: %v", done, restarted)
	}
	// The reload's apply corrected the hand edits.
	if got := field("configmap/settings", "{.data.greeting}"); got != "hello" {
		t.Errorf("after the reload configmap settings has greeting %q, want the manifest's hello", got)
	}
	if got := field("deployment/untouched", "{.metadata.labels.tier}"); got != "web" {
		t.Errorf("after the reload deployment untouched has label tier=%q, want the manifest's web", got)
	}
	// The readiness-probe path: Restart returned once the pod reported
	// ready, so its status shows the new image at once.
	if got := running("probed"); !strings.HasSuffix(got.imageID, v2.ID) || got.uid != probed1.uid || got.restarts != probed1.restarts+1 {
		t.Errorf("right after the reload probed runs %+v, want pod %s restarted in place on %s and ready", got, probed1.name, v2.ID)
	}
	inPlace("state", state1, v2.ID)
	inPlace("daemon", daemon1, v2.ID)
	for _, w := range []string{"statefulset/state", "daemonset/daemon"} {
		if out, err := node.Run(ctx, "rollout", "status", w, "--timeout=30s"); err != nil || !strings.Contains(out, "roll") {
			t.Errorf("rollout status of %s after an in-place restart: %q, %v", w, out, err)
		}
	}
	// app: the same pod, its container restarted in place on the new image,
	// the Deployment untouched (no new ReplicaSet).
	settled("app", v2.ID)
	app2 := running("app")
	if !strings.HasSuffix(app2.imageID, v2.ID) || app2.name != app1.name || app2.restarts != app1.restarts+1 {
		t.Errorf("after the reload app runs %+v, want pod %s restarted in place on the new config %s", app2, app1.name, v2.ID)
	}
	if got := replicaSets("app"); got != rs {
		t.Errorf("app's ReplicaSets are %q, were %q: an in-place restart must not roll the Deployment out", got, rs)
	}
	// stubborn would have held the in-place restart for its grace period: a
	// new pod runs the new image instead.
	if got := running("stubborn"); !strings.HasSuffix(got.imageID, v2.ID) || got.name == stubborn1.name {
		t.Errorf("after the reload stubborn runs %+v, want a new pod (not %s) on the new config %s", got, stubborn1.name, v2.ID)
	}
	if got := running("untouched"); got != untouched {
		t.Errorf("the workload of the unchanged image changed: %+v, was %+v", got, untouched)
	}
	if out, err := node.Run(ctx, "logs", "job/check"); err != nil || strings.TrimSpace(out) != "2" {
		t.Errorf("the Job ran again with %q (%v), want the new content 2", out, err)
	}

	// A second edit right after: the kubelet's restart back-off does not
	// hold the in-place restart.
	v3 := build("3")
	if done, _ := reload(v3); !slices.Equal(done, restarted) {
		t.Errorf("second edit restarted %v", done)
	}
	settled("app", v3.ID)
	if got := running("app"); !strings.HasSuffix(got.imageID, v3.ID) || got.name != app1.name || got.restarts != app1.restarts+2 {
		t.Errorf("after a second edit app runs %+v, want pod %s restarted in place again on %s", got, app1.name, v3.ID)
	}
	// The Deployment reads as rolled out, and a later rollout works and
	// runs the newest content from the template's tag.
	if out, err := node.Run(ctx, "rollout", "status", "deployment/app", "--timeout=30s"); err != nil || !strings.Contains(out, "successfully rolled out") {
		t.Errorf("rollout status after in-place restarts: %q, %v", out, err)
	}
	if _, err := node.Run(ctx, "rollout", "restart", "deployment/app"); err != nil {
		t.Fatal(err)
	}
	if out, err := node.Run(ctx, "rollout", "status", "deployment/app", "--timeout=2m"); err != nil {
		t.Fatalf("a rollout after in-place restarts: %q, %v", out, err)
	}
	if got := running("app"); !strings.HasSuffix(got.imageID, v3.ID) || got.name == app1.name {
		t.Errorf("after a rollout app runs %+v, want a new pod on %s", got, v3.ID)
	}
}
