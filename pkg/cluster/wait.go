package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
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
		ReadinessGates                []struct{}     `json:"readinessGates"`
	} `json:"spec"`
	Status struct {
		Phase             string            `json:"phase"`
		ContainerStatuses []containerStatus `json:"containerStatuses"`
		Conditions        []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
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

// wait waits until a workload is ready (a Job: has succeeded), watching it
// and its pods through the API server. It fails at once, in one line, when
// a pod's image was never loaded into its node, when a Job or a bare Pod
// fails (with the exit code and the end of its log), or when alive (asked
// once a second) reports the nodes gone; after timeout it names the pods'
// last events.
func (k kube) wait(ctx context.Context, o Object, timeout time.Duration, alive func(context.Context) error) error {
	res, ok := waitResource[o.Kind]
	if !ok {
		return nil // nothing to wait for (a Service, a ConfigMap…)
	}
	c, err := apiClient(k.config)
	if err != nil {
		return err
	}
	nsName := cmp.Or(o.Namespace, "default")
	objs, pods := c.Resource(res).Namespace(nsName), c.Resource(podsResource).Namespace(nsName)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var obj map[string]any
	live := map[string]pod{}
	for {
		// A list, then watches from it; a watch that ends lists again.
		ol, err := objs.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + o.Name})
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", describe(o), err)
		}
		obj = nil
		if len(ol.Items) > 0 {
			obj = ol.Items[0].Object
		}
		pl, err := pods.List(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", describe(o), err)
		}
		clear(live)
		for _, item := range pl.Items {
			var p pod
			if decode(item.Object, &p) == nil && owns(o, p) {
				live[p.Metadata.Name] = p
			}
		}
		ow, err := objs.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + o.Name, ResourceVersion: ol.GetResourceVersion()})
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", describe(o), err)
		}
		pw, err := pods.Watch(ctx, metav1.ListOptions{ResourceVersion: pl.GetResourceVersion()})
		if err != nil {
			ow.Stop()
			return fmt.Errorf("waiting for %s: %w", describe(o), err)
		}
		done, err := func() (bool, error) {
			defer ow.Stop()
			defer pw.Stop()
			for {
				if done, err := k.ready(ctx, o, obj, live); done || err != nil {
					return done, err
				}
				select {
				case <-ctx.Done():
					return false, ctx.Err()
				case <-deadline.C:
					return false, fmt.Errorf("%s was not ready within %s: %s", describe(o), timeout, k.lastEvents(context.WithoutCancel(ctx), o))
				case <-tick.C:
					if alive != nil {
						if err := alive(ctx); err != nil {
							return false, fmt.Errorf("waiting for %s: %w", describe(o), err)
						}
					}
				case ev, ok := <-ow.ResultChan():
					if !ok || ev.Type == watch.Error {
						return false, nil
					}
					if u, ok := ev.Object.(interface{ UnstructuredContent() map[string]any }); ok {
						switch ev.Type {
						case watch.Added, watch.Modified:
							obj = u.UnstructuredContent()
						case watch.Deleted:
							obj = nil
						}
					}
				case ev, ok := <-pw.ResultChan():
					if !ok || ev.Type == watch.Error {
						return false, nil
					}
					u, ok := ev.Object.(interface{ UnstructuredContent() map[string]any })
					if !ok || ev.Type == watch.Bookmark {
						continue
					}
					var p pod
					if decode(u.UnstructuredContent(), &p) != nil || !owns(o, p) {
						continue
					}
					if ev.Type == watch.Deleted {
						delete(live, p.Metadata.Name)
					} else {
						live[p.Metadata.Name] = p
					}
				}
			}
		}()
		if done || err != nil {
			return err
		}
	}
}

var waitResource = map[string]schema.GroupVersionResource{
	"Deployment":  workloadResource["Deployment"],
	"StatefulSet": workloadResource["StatefulSet"],
	"DaemonSet":   workloadResource["DaemonSet"],
	"Job":         {Group: "batch", Version: "v1", Resource: "jobs"},
	"Pod":         podsResource,
}

// status is what waiting reads of a workload: the fields `kubectl rollout
// status` reads, and a Job's counts.
type status struct {
	Metadata struct {
		Generation int64 `json:"generation"`
	} `json:"metadata"`
	Spec struct {
		Replicas       *int32 `json:"replicas"`
		UpdateStrategy struct {
			Type          string `json:"type"`
			RollingUpdate *struct {
				Partition *int32 `json:"partition"`
			} `json:"rollingUpdate"`
		} `json:"updateStrategy"`
	} `json:"spec"`
	Status struct {
		ObservedGeneration     int64  `json:"observedGeneration"`
		Replicas               int32  `json:"replicas"`
		UpdatedReplicas        int32  `json:"updatedReplicas"`
		ReadyReplicas          int32  `json:"readyReplicas"`
		AvailableReplicas      int32  `json:"availableReplicas"`
		CurrentRevision        string `json:"currentRevision"`
		UpdateRevision         string `json:"updateRevision"`
		DesiredNumberScheduled int32  `json:"desiredNumberScheduled"`
		UpdatedNumberScheduled int32  `json:"updatedNumberScheduled"`
		NumberAvailable        int32  `json:"numberAvailable"`
		Succeeded              int32  `json:"succeeded"`
		Failed                 int32  `json:"failed"`
		Conditions             []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
			Reason string `json:"reason"`
		} `json:"conditions"`
	} `json:"status"`
}

// ready tells from o's object (nil: not there yet) and its pods whether o
// is ready, failing on what cannot get better. Deployments, StatefulSets
// and DaemonSets are read as `kubectl rollout status` reads them.
func (k kube) ready(ctx context.Context, o Object, obj map[string]any, pods map[string]pod) (bool, error) {
	for _, p := range pods {
		for _, c := range p.Status.ContainerStatuses {
			if w := c.State.Waiting; w != nil && w.Reason == "ErrImageNeverPull" {
				return false, fmt.Errorf("%s: image %s was not loaded into node %s: run the K3dLoad target, or make the manifest name an image this plan builds", describe(o), c.Image, k.nodeName(ctx, p.Spec.NodeName))
			}
		}
	}
	if obj == nil {
		return false, nil
	}
	var w status
	if err := decode(obj, &w); err != nil {
		return false, fmt.Errorf("reading %s: %w", describe(o), err)
	}
	s := w.Status
	switch o.Kind {
	case "Deployment":
		if w.Metadata.Generation > s.ObservedGeneration {
			return false, nil
		}
		for _, c := range s.Conditions {
			if c.Type == "Progressing" && c.Reason == "ProgressDeadlineExceeded" {
				return false, fmt.Errorf("%s exceeded its progress deadline: %s", describe(o), k.lastEvents(context.WithoutCancel(ctx), o))
			}
		}
		if w.Spec.Replicas != nil && s.UpdatedReplicas < *w.Spec.Replicas {
			return false, nil
		}
		return s.Replicas <= s.UpdatedReplicas && s.AvailableReplicas >= s.UpdatedReplicas, nil
	case "StatefulSet":
		if s.ObservedGeneration == 0 || w.Metadata.Generation > s.ObservedGeneration {
			return false, nil
		}
		if w.Spec.Replicas != nil && s.ReadyReplicas < *w.Spec.Replicas {
			return false, nil
		}
		if ru := w.Spec.UpdateStrategy.RollingUpdate; w.Spec.UpdateStrategy.Type == "RollingUpdate" && ru != nil && ru.Partition != nil && w.Spec.Replicas != nil {
			return s.UpdatedReplicas >= *w.Spec.Replicas-*ru.Partition, nil
		}
		return w.Spec.UpdateStrategy.Type == "OnDelete" || s.UpdateRevision == s.CurrentRevision, nil
	case "DaemonSet":
		if w.Metadata.Generation > s.ObservedGeneration {
			return false, nil
		}
		return s.UpdatedNumberScheduled >= s.DesiredNumberScheduled && s.NumberAvailable >= s.DesiredNumberScheduled, nil
	case "Pod":
		var p pod
		if err := decode(obj, &p); err != nil {
			return false, fmt.Errorf("reading %s: %w", describe(o), err)
		}
		if p.Status.Phase == "Failed" {
			return false, k.failed(ctx, o, p)
		}
		for _, c := range p.Status.Conditions {
			if c.Type == "Ready" {
				return c.Status == "True", nil
			}
		}
		return false, nil
	case "Job":
		if s.Succeeded > 0 {
			return true, nil
		}
		if s.Failed > 0 {
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
