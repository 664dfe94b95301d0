package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	k3dclient "github.com/k3d-io/k3d/v5/pkg/client"
	k3druntimes "github.com/k3d-io/k3d/v5/pkg/runtimes"
	k3d "github.com/k3d-io/k3d/v5/pkg/types"

	"github.com/hoistci/hoist/internal/kubenode"
	"github.com/hoistci/hoist/internal/standin"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/cluster"
	"github.com/hoistci/hoist/pkg/engine"
)

// kube measures on real Kubernetes nodes (internal/kubenode): the node's
// cold start with the components cached; the first load of n images into an
// empty node, Hoist against k3d's ImageImportIntoClusterMulti with k3d's own
// Docker runtime (its privileged execs work on the node through the
// hoist-runc runtime); apply → Deployment rolled out and Job complete; and
// edit → a pod running the new image ID for one changed image, Hoist
// (K3dLoad + Restart) against k3d's import of that image + the same
// Restart, once restarting in place and once with rollout restart. Each run
// uses a fresh node per contender.
func kube(ctx context.Context, e *engine.Engine, n, runs, payload int) error {
	if err := kubenode.CanRun(); err != nil {
		return err
	}
	comps, err := kubenode.EnsureComponents(ctx, kubenode.EnsureOptions{Tools: kubenode.DefaultTools(), Progress: os.Stderr})
	if err != nil {
		return err
	}
	bbPath, err := lookBusybox()
	if err != nil {
		return err
	}
	bb, err := os.ReadFile(bbPath)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "hoist-bench-kube-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	var cleanup []func()
	defer func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}()
	// n images of a matrix: a shared base (busybox, so pods run) and an own
	// layer each.
	base := standin.Layer{"bin/busybox": bb}
	prefix := testenv.Unique("hoist-bench/kube")
	refs, ids := map[string]string{}, map[string]string{}
	var imgs []cluster.Image
	var names []string
	makeImage := func(i int) (cluster.Image, error) {
		ref := fmt.Sprintf("%s-%02d:1", prefix, i)
		img, err := standin.MakeImage(ctx, e, ref, base, standin.Layer{"payload": random(payload)})
		if err != nil {
			return cluster.Image{}, err
		}
		cleanup = append(cleanup, func() { e.Remove(ctx, ref); e.Remove(ctx, img.ID) })
		return cluster.Image{Ref: ref, ID: img.Config, DiffIDs: img.DiffIDs}, nil
	}
	for i := range n {
		img, err := makeImage(i)
		if err != nil {
			return err
		}
		name := fmt.Sprintf("img%02d", i)
		imgs, names, refs[name], ids[name] = append(imgs, img), append(names, name), img.Ref, img.ID
	}
	manifests := filepath.Join(work, "manifests")
	os.MkdirAll(manifests, 0o755)
	os.WriteFile(filepath.Join(manifests, "app.yaml"), []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      containers:
      # A server that stops on SIGTERM, as servers do.
      - {name: app, image: img00, imagePullPolicy: Never, command: [/bin/busybox, sh, -c, "trap 'exit 0' TERM; sleep 3600 & wait"]}
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
      - {name: check, image: img01, imagePullPolicy: Never, command: [/bin/busybox, "true"]}
`), 0o644)

	var cold, hoistFirst, k3dFirst, apply, hoistEdit, k3dEdit, hoistEditLoad, k3dEditImport []time.Duration
	// The same edit again, each side restarting with `rollout restart` (a
	// new pod) instead of in place: what the restart costs either way.
	var hoistRollout, k3dRollout []time.Duration
	// Until the pod's status shows the new image, in place: the restart
	// returns on the kubelet's Started event; the status follows at its
	// next relist of the containers.
	var hoistStatus, k3dStatus []time.Duration
	// k3d's import fails now and then at high load ("use of closed network
	// connection", inside k3d): that run is measured again, on fresh
	// nodes, rather than ending the bench; the count is printed.
	all := []*[]time.Duration{&cold, &hoistFirst, &k3dFirst, &apply, &hoistEdit, &k3dEdit, &hoistEditLoad, &k3dEditImport, &hoistRollout, &k3dRollout, &hoistStatus, &k3dStatus}
	k3dFailures, attempt := 0, 0
	for r := 0; r < runs; attempt++ {
		lens := make([]int, len(all))
		for i, p := range all {
			lens[i] = len(*p)
		}
		err := func() error {
			var nodes [2]*kubenode.Node
			defer func() {
				for _, nd := range nodes {
					if nd != nil {
						nd.Stop(context.Background())
					}
				}
			}()
			for c := range nodes {
				start := time.Now()
				nd, err := kubenode.Start(ctx, kubenode.Options{Engine: e, Components: comps, Cluster: testenv.Unique("hoist-bench-"), Dir: filepath.Join(work, fmt.Sprintf("node-%d-%d", attempt, c))})
				if err != nil {
					nd.Stop(context.Background())
					return err
				}
				cold = append(cold, time.Since(start))
				cleanup = append(cleanup, func() { nd.Stop(context.Background()) })
				nodes[c] = nd
			}
			hn, kn := nodes[0], nodes[1]
			state := filepath.Join(work, fmt.Sprintf("state-%d.json", attempt))
			hoistLoad := func() (cluster.LoadResult, error) {
				ns, err := cluster.Nodes(ctx, cluster.Lister(e.API), hn.Cluster)
				if err != nil {
					return cluster.LoadResult{}, err
				}
				return cluster.Load(ctx, e.API, ns, imgs, cluster.LoadOptions{StateFile: state})
			}
			k3dImport := func(refs []string) error {
				c, err := k3dclient.ClusterGet(ctx, k3druntimes.Docker, &k3d.Cluster{Name: kn.Cluster})
				if err != nil {
					return fmt.Errorf("k3d cluster get: %w", err)
				}
				if err := k3dclient.ImageImportIntoClusterMulti(ctx, k3druntimes.Docker, refs, c, k3d.ImageImportOpts{Mode: k3d.ImportModeDirect}); err != nil {
					return k3dError{err}
				}
				return nil
			}
			var all []string
			for _, img := range imgs {
				all = append(all, img.Ref)
			}
			// First load into the empty nodes, alternating who goes first.
			first := []func() error{
				func() error {
					s := time.Now()
					_, err := hoistLoad()
					hoistFirst = append(hoistFirst, time.Since(s))
					return err
				},
				func() error {
					s := time.Now()
					err := k3dImport(all)
					k3dFirst = append(k3dFirst, time.Since(s))
					return err
				},
			}
			for i := range first {
				if err := first[(i+r)%2](); err != nil {
					return err
				}
			}
			// Apply → rolled out and complete, on Hoist's node.
			inPlace := true
			restart := func(nd *kubenode.Node, changed []string) error {
				o := cluster.RestartOptions{Kubeconfig: nd.Kubeconfig, Kubectl: nd.Kubectl, Manifests: manifests, Refs: refs, IDs: ids, Changed: changed, WorkDir: filepath.Join(work, "w"), Timeout: 2 * time.Minute}
				if !inPlace {
					o.IDs = nil // without image IDs, Restart rolls workloads out
				}
				_, err := cluster.Restart(ctx, o)
				return err
			}
			s := time.Now()
			if err := restart(hn, names); err != nil {
				return err
			}
			apply = append(apply, time.Since(s))
			if err := restart(kn, names); err != nil {
				return err
			}
			// One image of the matrix changes (the Deployment's); each side
			// gets it into its node and restarts what runs it: in place, then,
			// after another change, with rollout restart.
			for _, mode := range []bool{true, false} {
				inPlace = mode
				if imgs[0], err = makeImage(0); err != nil {
					return err
				}
				ids["img00"] = imgs[0].ID
				hoistAll, k3dAll := &hoistEdit, &k3dEdit
				if !mode {
					hoistAll, k3dAll = &hoistRollout, &k3dRollout
				}
				edits := []func() error{
					func() error {
						s := time.Now()
						res, err := hoistLoad()
						if err == nil && len(res.Sent) != 1 {
							err = fmt.Errorf("hoist sent %v after one change", res.Sent)
						}
						loaded := time.Since(s)
						if err == nil {
							err = restart(hn, []string{"img00"})
						}
						if mode {
							hoistEditLoad = append(hoistEditLoad, loaded)
						}
						*hoistAll = append(*hoistAll, time.Since(s))
						if err == nil && mode {
							err = statusShows(ctx, hn, imgs[0].ID)
							hoistStatus = append(hoistStatus, time.Since(s))
						}
						return err
					},
					func() error {
						s := time.Now()
						err := k3dImport([]string{imgs[0].Ref})
						if mode {
							k3dEditImport = append(k3dEditImport, time.Since(s))
						}
						if err == nil {
							err = restart(kn, []string{"img00"})
						}
						*k3dAll = append(*k3dAll, time.Since(s))
						if err == nil && mode {
							err = statusShows(ctx, kn, imgs[0].ID)
							k3dStatus = append(k3dStatus, time.Since(s))
						}
						return err
					},
				}
				for i := range edits {
					if err := edits[(i+r)%2](); err != nil {
						return err
					}
				}
			}
			return nil
		}()
		var kerr k3dError
		if errors.As(err, &kerr) && k3dFailures < 5 {
			k3dFailures++
			fmt.Fprintf(os.Stderr, "k3d's import failed in run %d (%v): measuring that run again\n", r+1, kerr.err)
			for i, p := range all {
				*p = (*p)[:lens[i]]
			}
			continue
		}
		if err != nil {
			return err
		}
		r++
	}
	fmt.Printf("real Kubernetes %s nodes (kubelet + containerd in a k3d-labelled container), %d images (busybox base + %d KiB each), %d runs, medians\n\n", kubenode.Version, n, payload>>10, runs)
	fmt.Println("| measure | Hoist | k3d | ratio | target |")
	fmt.Println("|---|---|---|---|---|")
	fmt.Printf("| node cold start to Ready (components cached) | %s | | | |\n", ms(median(cold)))
	fmt.Printf("| apply → Deployment rolled out + Job complete | %s | | | |\n", ms(median(apply)))
	row := func(what string, h, k []time.Duration, target float64) bool {
		ratio := median(h).Seconds() / median(k).Seconds()
		mark := "ok"
		if ratio > target {
			mark = "MISSED"
		}
		fmt.Printf("| %s | %s | %s | %.3f× | ≤ %.1f× %s |\n", what, ms(median(h)), ms(median(k)), ratio, target, mark)
		return ratio <= target
	}
	ok := row(fmt.Sprintf("first load of %d into an empty node", n), hoistFirst, k3dFirst, 0.6)
	fmt.Printf("| edit: the load alone (K3dLoad of all %d vs k3d import of the changed one) | %s | %s | %.3f× | |\n", n, ms(median(hoistEditLoad)), ms(median(k3dEditImport)), median(hoistEditLoad).Seconds()/median(k3dEditImport).Seconds())
	var hr, kr []time.Duration
	for i := range hoistEdit {
		hr, kr = append(hr, hoistEdit[i]-hoistEditLoad[i]), append(kr, k3dEdit[i]-k3dEditImport[i])
	}
	fmt.Printf("| edit: the restart alone (in place, the same for both) | %s | %s | | |\n", ms(median(hr)), ms(median(kr)))
	ok = row("edit → pod running the new image ID (1 of "+fmt.Sprint(n)+" changed; load + restart)", hoistEdit, k3dEdit, 0.3) && ok
	fmt.Printf("| edit → the pod's status shows the new image ID (the kubelet's next relist) | %s | %s | %.3f× | |\n", ms(median(hoistStatus)), ms(median(k3dStatus)), median(hoistStatus).Seconds()/median(k3dStatus).Seconds())
	fmt.Printf("| edit → pod, restarting with `rollout restart` instead (load + rollout) | %s | %s | %.3f× | |\n", ms(median(hoistRollout)), ms(median(k3dRollout)), median(hoistRollout).Seconds()/median(k3dRollout).Seconds())
	list := func(ds []time.Duration) string {
		var out []string
		for _, d := range ds {
			out = append(out, ms(d))
		}
		return strings.Join(out, ", ")
	}
	fmt.Printf("\nrestart alone, in place, each run: Hoist %s; k3d %s\n", list(hr), list(kr))
	if k3dFailures > 0 {
		fmt.Printf("k3d's import failed %d times; those runs were measured again\n", k3dFailures)
	}
	if !ok {
		return fmt.Errorf("a target was missed")
	}
	return nil
}

// statusShows watches the app Deployment's pods until one that is not
// going away shows a ready container of the image id in its status.
func statusShows(ctx context.Context, nd *kubenode.Node, id string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", nd.Kubeconfig)
	if err != nil {
		return err
	}
	c, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	pods := c.Resource(schema.GroupVersionResource{Version: "v1", Resource: "pods"}).Namespace("default")
	shows := func(obj map[string]any) bool {
		var p struct {
			Metadata struct {
				DeletionTimestamp *string `json:"deletionTimestamp"`
			} `json:"metadata"`
			Status struct {
				ContainerStatuses []struct {
					ImageID string `json:"imageID"`
					Ready   bool   `json:"ready"`
				} `json:"containerStatuses"`
			} `json:"status"`
		}
		b, _ := json.Marshal(obj)
		if json.Unmarshal(b, &p) != nil || p.Metadata.DeletionTimestamp != nil || len(p.Status.ContainerStatuses) != 1 {
			return false
		}
		cs := p.Status.ContainerStatuses[0]
		return cs.Ready && cs.ImageID == id
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "app=app"})
	if err != nil {
		return err
	}
	for _, it := range list.Items {
		if shows(it.Object) {
			return nil
		}
	}
	w, err := pods.Watch(ctx, metav1.ListOptions{LabelSelector: "app=app", ResourceVersion: list.GetResourceVersion()})
	if err != nil {
		return err
	}
	defer w.Stop()
	for ev := range w.ResultChan() {
		if u, ok := ev.Object.(*unstructured.Unstructured); ok && shows(u.Object) {
			return nil
		}
	}
	return fmt.Errorf("no pod of app showed %s: %w", id, ctx.Err())
}

func lookBusybox() (string, error) {
	p, err := exec.LookPath("busybox")
	if err != nil {
		return "", fmt.Errorf("busybox is not installed (apt-get install busybox-static)")
	}
	return p, nil
}

// k3dError is a failure inside k3d's own import.
type k3dError struct{ err error }

func (e k3dError) Error() string { return "k3d import: " + e.err.Error() }
func (e k3dError) Unwrap() error { return e.err }
