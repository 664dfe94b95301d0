package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// RestartOptions describe which workloads to restart after a reload.
type RestartOptions struct {
	Kubeconfig string
	Kubectl    string            // default: kubectl from PATH
	Manifests  string            // folder of *.yaml manifests (infra/k8s)
	Refs       map[string]string // plan image name -> engine reference
	// Changed are the plan image names whose new content was just loaded.
	Changed []string
	Timeout time.Duration // for each wait (default 2m)
	WorkDir string        // resolved manifests go here
	Alive   func(context.Context) error
}

// Restart makes the workloads of the manifests that run a changed image run
// its new content, and waits until they do: Deployments, StatefulSets and
// DaemonSets get `kubectl rollout restart` (their pod templates name the same
// tag, so nothing else would replace the pods), Jobs and bare Pods are
// deleted and applied again. The manifests are applied first, so a workload
// not yet in the cluster is created. It returns the restarted objects as
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
	objs, err := resolveDir(o.Manifests, o.Refs, out)
	if err != nil {
		return nil, err
	}
	k := kube{bin: kubectl, config: o.Kubeconfig}
	if err := k.reach(ctx, nil); err != nil {
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
			return nil, fmt.Errorf("restarting %s: %w", describe(ob), err)
		}
	}
	if _, err := k.run(ctx, "apply", "-f", out); err != nil {
		return nil, fmt.Errorf("applying %s: %w", o.Manifests, err)
	}
	var done []string
	for _, ob := range restart {
		if _, err := k.run(ctx, append([]string{"rollout", "restart", strings.ToLower(ob.Kind) + "/" + ob.Name}, ns(ob)...)...); err != nil {
			return done, fmt.Errorf("restarting %s: %w", describe(ob), err)
		}
	}
	for _, ob := range append(restart, recreate...) {
		if err := k.wait(ctx, ob, o.Timeout, o.Alive); err != nil {
			return done, err
		}
		done = append(done, strings.ToLower(ob.Kind)+"/"+ob.Name)
	}
	return done, nil
}
