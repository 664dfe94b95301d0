package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// pod is what waiting reads of a pod.
type pod struct {
	Metadata struct {
		Name              string  `json:"name"`
		ResourceVersion   string  `json:"resourceVersion"`
		DeletionTimestamp *string `json:"deletionTimestamp"`
		OwnerReferences   []struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
		} `json:"ownerReferences"`
	} `json:"metadata"`
	Spec struct {
		NodeName                      string         `json:"nodeName"`
		Containers                    []podContainer `json:"containers"`
		TerminationGracePeriodSeconds *int64         `json:"terminationGracePeriodSeconds"`
	} `json:"spec"`
	Status struct {
		Phase             string            `json:"phase"`
		ContainerStatuses []containerStatus `json:"containerStatuses"`
	} `json:"status"`
}

// containerStatus is what waiting reads of a container's status.
type containerStatus struct {
	Name        string `json:"name"`
	Image       string `json:"image"`
	ContainerID string `json:"containerID"`
	ImageID     string `json:"imageID"`
	Ready       bool   `json:"ready"`
	State       struct {
		Running *struct{} `json:"running"`
		Waiting *struct {
			Reason  string `json:"reason"`
			Message string `json:"message"`
		} `json:"waiting"`
		Terminated *struct {
			ExitCode int    `json:"exitCode"`
			Reason   string `json:"reason"`
		} `json:"terminated"`
	} `json:"state"`
}

// owns tells whether the workload o made p (a Deployment through its
// ReplicaSets, named after it).
func owns(o Object, p pod) bool {
	if o.Kind == "Pod" {
		return p.Metadata.Name == o.Name
	}
	for _, r := range p.Metadata.OwnerReferences {
		if r.Kind == o.Kind && r.Name == o.Name {
			return true
		}
		if o.Kind == "Deployment" && r.Kind == "ReplicaSet" && strings.HasPrefix(r.Name, o.Name+"-") {
			return true
		}
	}
	return false
}

// pods lists the pods of workload o.
func (k kube) pods(ctx context.Context, o Object) ([]pod, error) {
	b, err := k.run(ctx, append([]string{"get", "pods", "-o", "json"}, ns(o)...)...)
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []pod `json:"items"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("reading kubectl get pods: %w", err)
	}
	var out []pod
	for _, p := range list.Items {
		if owns(o, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

func describe(o Object) string { return strings.ToLower(o.Kind) + " " + o.Name }

// wait waits until a workload is ready (a Job: has succeeded), asking
// five times a second. It fails at once, in one line, when a pod's image was
// never loaded into its node, when a Job fails (with the exit code and the
// end of its log), or when alive reports the nodes gone; after timeout it
// names the pods' last events.
func (k kube) wait(ctx context.Context, o Object, timeout time.Duration, alive func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		done, err := k.ready(ctx, o)
		if done || err != nil {
			return err
		}
		if alive != nil {
			if err := alive(ctx); err != nil {
				return fmt.Errorf("waiting for %s: %w", describe(o), err)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s was not ready within %s: %s", describe(o), timeout, k.lastEvents(context.WithoutCancel(ctx), o))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// ready asks once whether o is ready, failing on what cannot get better.
func (k kube) ready(ctx context.Context, o Object) (bool, error) {
	pods, err := k.pods(ctx, o)
	if err != nil {
		return false, err
	}
	for _, p := range pods {
		for _, c := range p.Status.ContainerStatuses {
			if w := c.State.Waiting; w != nil && w.Reason == "ErrImageNeverPull" {
				return false, fmt.Errorf("%s: image %s was not loaded into node %s: run the K3dLoad target, or make the manifest name an image this plan builds", describe(o), c.Image, k.nodeName(ctx, p.Spec.NodeName))
			}
		}
	}
	switch o.Kind {
	case "Deployment", "StatefulSet", "DaemonSet":
		b, err := k.run(ctx, append([]string{"rollout", "status", strings.ToLower(o.Kind) + "/" + o.Name, "--watch=false"}, ns(o)...)...)
		if err != nil {
			return false, err
		}
		return strings.Contains(string(b), "successfully rolled out"), nil
	case "Pod":
		for _, p := range pods {
			if p.Status.Phase == "Failed" {
				return false, k.failed(ctx, o, p)
			}
		}
		b, err := k.run(ctx, append([]string{"get", "pod/" + o.Name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`}, ns(o)...)...)
		if err != nil {
			return false, err
		}
		return strings.TrimSpace(string(b)) == "True", nil
	case "Job":
		b, err := k.run(ctx, append([]string{"get", "job/" + o.Name, "-o", "jsonpath={.status.succeeded},{.status.failed}"}, ns(o)...)...)
		if err != nil {
			return false, err
		}
		s, f, _ := strings.Cut(strings.TrimSpace(string(b)), ",")
		if s != "" && s != "0" {
			return true, nil
		}
		if f != "" && f != "0" {
			for _, p := range pods {
				if p.Status.Phase == "Failed" {
					return false, k.failed(ctx, o, p)
				}
			}
			return false, fmt.Errorf("%s failed", describe(o))
		}
		return false, nil
	}
	return true, nil
}

// failed describes a failed pod of o: the first container that exited
// non-zero, its exit code and the end of its log.
func (k kube) failed(ctx context.Context, o Object, p pod) error {
	for _, c := range p.Status.ContainerStatuses {
		t := c.State.Terminated
		if t == nil || t.ExitCode == 0 {
			continue
		}
		b, _ := k.run(ctx, append([]string{"logs", "pod/" + p.Metadata.Name, "-c", c.Name, "--tail=5"}, ns(o)...)...)
		log := strings.Join(strings.Split(strings.TrimSpace(string(b)), "\n"), " | ")
		return fmt.Errorf("%s failed: container %s of pod %s exited with code %d; its log ends: %s", describe(o), c.Name, p.Metadata.Name, t.ExitCode, log)
	}
	return fmt.Errorf("%s failed: pod %s is %s", describe(o), p.Metadata.Name, p.Status.Phase)
}

// lastEvents names the last events of o's pods (or of o when it has none),
// in one line.
func (k kube) lastEvents(ctx context.Context, o Object) string {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	names := []string{o.Name}
	if pods, err := k.pods(ctx, o); err == nil && len(pods) > 0 {
		names = names[:0]
		for _, p := range pods {
			names = append(names, p.Metadata.Name)
		}
	}
	var lines []string
	for _, n := range names {
		b, err := k.run(ctx, append([]string{"get", "events", "--field-selector", "involvedObject.name=" + n, "--sort-by=.lastTimestamp",
			"-o", `jsonpath={range .items[*]}{.reason}: {.message}{"\n"}{end}`}, ns(o)...)...)
		if err != nil {
			continue
		}
		var ev []string
		for _, e := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			// A cluster without DNS says so for every pod; it never explains a failure.
			if e != "" && !strings.HasPrefix(e, "MissingClusterDNS:") {
				ev = append(ev, n+": "+e)
			}
		}
		if len(ev) > 3 {
			ev = ev[len(ev)-3:]
		}
		lines = append(lines, ev...)
	}
	if len(lines) == 0 {
		return "no events recorded for its pods"
	}
	return "last events: " + strings.Join(lines, " | ")
}

// NodeContainerLabel is the Kubernetes node label naming the container a
// node runs in, where the node's name cannot be the container's (k3s names
// its nodes after their containers).
const NodeContainerLabel = "hoist.dev/container"

// reach checks, in one line each, that the kubeconfig's API server answers
// and, given the node containers the images went to, that it is their
// cluster's.
func (k kube) reach(ctx context.Context, containers []string) error {
	b, err := k.run(ctx, "get", "nodes", "--request-timeout=20s", "-o", `jsonpath={range .items[*]}{.metadata.name}{"\t"}{.metadata.labels.hoist\.dev/container}{"\n"}{end}`)
	if err != nil {
		// Only now ask which server it is, for the message.
		if c, cerr := k.run(ctx, "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"); cerr != nil {
			return fmt.Errorf("kubeconfig %s: %s: fix it, or remove it to have it written again", k.config, firstLine(cerr.Error()))
		} else if len(c) == 0 {
			return fmt.Errorf("kubeconfig %s names no API server: fix it, or remove it to have it written again", k.config)
		} else {
			return fmt.Errorf("the API server %s (kubeconfig %s) does not answer: %s: start the cluster, or fix the kubeconfig", strings.TrimSpace(string(c)), k.config, lastLine(b))
		}
	}
	if len(containers) == 0 {
		return nil
	}
	want := map[string]bool{}
	for _, c := range containers {
		want[c] = true
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		name, label, _ := strings.Cut(line, "\t")
		if want[name] || want[label] {
			return nil
		}
		names = append(names, name)
	}
	server := "its API server"
	if c, err := k.run(ctx, "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"); err == nil {
		server = "the API server " + strings.TrimSpace(string(c))
	}
	return fmt.Errorf("kubeconfig %s is for another cluster: %s has nodes %s, and none runs in the containers the images were loaded into (%s): use the kubeconfig of that cluster",
		k.config, server, strings.Join(names, ", "), strings.Join(containers, ", "))
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// nodeName names a Kubernetes node with the container it runs in, when a
// label says so and the names differ.
func (k kube) nodeName(ctx context.Context, node string) string {
	b, err := k.run(ctx, "get", "node", node, "-o", `jsonpath={.metadata.labels.hoist\.dev/container}`)
	if c := strings.TrimSpace(string(b)); err == nil && c != "" && c != node {
		return c
	}
	return node
}
