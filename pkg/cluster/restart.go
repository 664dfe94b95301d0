package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// RestartOptions describe which workloads to restart after a reload.
type RestartOptions struct {
	Kubeconfig string
	Kubectl    string            // default: kubectl from PATH
	Manifests  string            // folder of *.yaml manifests (infra/k8s)
	Refs       map[string]string // plan image name -> engine reference
	// IDs are the plan images' IDs as the node's containerd knows them
	// (config digests), plan image name -> ID. A changed image with an ID
	// is restarted in place; without one, its workloads are rolled out.
	IDs map[string]string
	// Changed are the plan image names whose new content was just loaded.
	Changed []string
	Timeout time.Duration // for each wait (default 2m)
	WorkDir string        // resolved manifests go here
	Alive   func(context.Context) error
}

// Restart makes the workloads of the manifests that run a changed image run
// its new content, and waits until they do. The manifests are applied
// first, so a workload not yet in the cluster is created, and one whose
// template changed rolls out by itself. Deployments, StatefulSets and
// DaemonSets otherwise get their pods' changed containers restarted in
// place (see inplace.go), or `kubectl rollout restart` when that cannot be
// done or the old container does not stop within inPlaceWait; Jobs and bare
// Pods are deleted and applied again. It returns the restarted objects as
// "kind/name".
func Restart(ctx context.Context, o RestartOptions) ([]string, error) {
	kubectl, err := kubectlPath(o.Kubectl)
	if err != nil {
		return nil, err
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	out := filepath.Join(o.WorkDir, "manifests")
	last := readFiles(out)
	objs, err := resolveDir(o.Manifests, o.Refs, out)
	if err != nil {
		return nil, err
	}
	// The same resolved manifests as the last reload's: applying them
	// again is expected to change nothing.
	same := len(last) > 0 && maps.Equal(last, readFiles(out))
	k := kube{bin: kubectl, config: o.Kubeconfig}
	// The API server is checked only when a call fails, to say why in one
	// line; on the dev loop every call counts.
	explain := func(err error) error {
		if rerr := k.reach(ctx, nil); rerr != nil {
			return rerr
		}
		return err
	}
	api, err := apiClient(o.Kubeconfig)
	if err != nil {
		return nil, err
	}
	var restart, recreate []Object
	for _, ob := range objs {
		if !slices.ContainsFunc(ob.Images, func(n string) bool { return slices.Contains(o.Changed, n) }) {
			continue
		}
		switch ob.Kind {
		case "Deployment", "StatefulSet", "DaemonSet":
			restart = append(restart, ob)
		case "Job", "Pod":
			recreate = append(recreate, ob)
		}
	}
	for _, ob := range recreate {
		if _, err := k.run(ctx, append([]string{"delete", strings.ToLower(ob.Kind) + "/" + ob.Name, "--ignore-not-found", "--wait=true"}, ns(ob)...)...); err != nil {
			return nil, explain(fmt.Errorf("restarting %s: %w", describe(ob), err))
		}
	}
	// Manifests that are the same as last time are applied while the pods
	// are patched: the apply is then expected to change nothing, and its
	// process start would otherwise come first. Changed ones are applied
	// first, so a restarted container sees, say, a changed ConfigMap. A
	// template the apply does change is seen below, after it, and that
	// workload is then waited for as it rolls out.
	applied := make(chan error, 1)
	go func() {
		applied <- newApplier(o.Kubeconfig, api).apply(ctx, out)
	}()
	applyErr := func() error {
		if err := <-applied; err != nil {
			return explain(fmt.Errorf("applying %s: %w", o.Manifests, err))
		}
		return nil
	}
	applyDone := !same
	if !same {
		if err := applyErr(); err != nil {
			return nil, err
		}
	}
	defer func() {
		if !applyDone {
			// Waited for on an early return; that return's error is the one.
			_ = applyErr()
		}
	}()
	// Engine reference -> image ID of each changed image.
	changed := map[string]string{}
	for _, n := range o.Changed {
		if id := o.IDs[n]; id != "" && o.Refs[n] != "" {
			changed[o.Refs[n]] = id
		}
	}
	var rollout, rolling []Object
	var inPlace []*patched
	for _, ob := range restart {
		if len(changed) == 0 {
			rollout = append(rollout, ob)
			continue
		}
		p, err := patchInPlace(ctx, api, ob, changed)
		switch {
		case errors.Is(err, errRolling), apierrors.IsNotFound(err):
			rolling = append(rolling, ob) // new: the apply creates it
		case errors.Is(err, errRollout):
			rollout = append(rollout, ob)
		case err != nil:
			if !applyDone {
				applyDone = true
				if aerr := applyErr(); aerr != nil {
					return nil, aerr
				}
			}
			return nil, err
		default:
			inPlace = append(inPlace, p)
		}
	}
	if !applyDone {
		applyDone = true
		if err := applyErr(); err != nil {
			return nil, err
		}
	}
	// A template the apply changed rolls its workload out: wait for that.
	for i := 0; same && i < len(inPlace); i++ {
		if changedBy, err := templateChanged(ctx, api, inPlace[i].ob); err != nil {
			return nil, err
		} else if changedBy {
			rolling = append(rolling, inPlace[i].ob)
			inPlace = slices.Delete(inPlace, i, i+1)
			i--
		}
	}
	roll := func(ob Object) error {
		if _, err := k.run(ctx, append([]string{"rollout", "restart", strings.ToLower(ob.Kind) + "/" + ob.Name}, ns(ob)...)...); err != nil {
			return fmt.Errorf("restarting %s: %w", describe(ob), err)
		}
		return nil
	}
	for _, ob := range rollout {
		if err := roll(ob); err != nil {
			return nil, err
		}
	}
	var done []string
	finished := func(ob Object) { done = append(done, strings.ToLower(ob.Kind)+"/"+ob.Name) }
	for _, p := range inPlace {
		err := k.waitInPlace(ctx, api, p, o.Timeout, o.Alive)
		if err == nil && p.replaced {
			err = k.wait(ctx, p.ob, o.Timeout, o.Alive)
		}
		if errors.Is(err, errRollout) {
			// The old container holds on to its grace period: a new pod
			// does not wait for it.
			if err = roll(p.ob); err == nil {
				err = k.wait(ctx, p.ob, o.Timeout, o.Alive)
			}
		}
		if err != nil {
			return done, err
		}
		finished(p.ob)
	}
	for _, ob := range slices.Concat(rollout, rolling, recreate) {
		if err := k.wait(ctx, ob, o.Timeout, o.Alive); err != nil {
			return done, err
		}
		finished(ob)
	}
	// Restarted first, then recreated, each in the manifests' order.
	order := map[string]int{}
	for i, ob := range slices.Concat(restart, recreate) {
		order[strings.ToLower(ob.Kind)+"/"+ob.Name] = i
	}
	slices.SortFunc(done, func(a, b string) int { return order[a] - order[b] })
	return done, nil
}

// readFiles returns the contents of the files in dir by name.
func readFiles(dir string) map[string]string {
	es, _ := os.ReadDir(dir)
	out := map[string]string{}
	for _, e := range es {
		if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil {
			out[e.Name()] = string(b)
		}
	}
	return out
}
