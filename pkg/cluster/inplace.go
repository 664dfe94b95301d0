package cluster

// The dev loop's fast restart: a workload's running pods get the changed
// container's image set to the new image's ID. A pod's image field is
// mutable; the kubelet then stops that one container and starts it again
// from the new image inside the pod's existing sandbox (no scheduling, no
// new network namespace, no volume set-up), and its restart back-off does
// not apply (the container's spec hash changed). The workload itself is
// left as it was: its template still names the tag, which now points at the
// new content, so a later rollout, a rescheduled pod or a crash restart run
// the same image, and `kubectl rollout status` reads as before.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
)

// inPlaceWait bounds how long an in-place restart may take to show before
// the workload is rolled out instead. A container that exits on SIGTERM is
// replaced, and reported by the kubelet, within about a second; one that
// ignores SIGTERM holds the replacement for its pod's whole grace period
// (30 s by default, never under the kubelet's 2 s), which a new pod does not
// wait for.
const inPlaceWait = 2 * time.Second

var (
	podsResource     = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	eventsResource   = schema.GroupVersionResource{Version: "v1", Resource: "events"}
	workloadResource = map[string]schema.GroupVersionResource{
		"Deployment":  {Group: "apps", Version: "v1", Resource: "deployments"},
		"StatefulSet": {Group: "apps", Version: "v1", Resource: "statefulsets"},
		"DaemonSet":   {Group: "apps", Version: "v1", Resource: "daemonsets"},
	}
)

// apiClient talks to the kubeconfig's API server directly: each kubectl
// call costs a process start, and waiting on it means asking again and
// again, where a watch is told at once.
func apiClient(kubeconfig string) (dynamic.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("reading kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	c, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	return c, nil
}

// workload is what the in-place restart reads of a Deployment, StatefulSet
// or DaemonSet.
type workload struct {
	Metadata struct {
		Generation int64 `json:"generation"`
	} `json:"metadata"`
	Spec struct {
		Selector *metav1.LabelSelector `json:"selector"`
		Template struct {
			Spec struct {
				InitContainers []podContainer `json:"initContainers"`
				Containers     []podContainer `json:"containers"`
			} `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
	Status struct {
		ObservedGeneration int64 `json:"observedGeneration"`
		// Deployment
		Replicas        int32 `json:"replicas"`
		UpdatedReplicas int32 `json:"updatedReplicas"`
		// StatefulSet
		CurrentRevision string `json:"currentRevision"`
		UpdateRevision  string `json:"updateRevision"`
		// DaemonSet
		DesiredNumberScheduled int32 `json:"desiredNumberScheduled"`
		UpdatedNumberScheduled int32 `json:"updatedNumberScheduled"`
	} `json:"status"`
}

// rolling tells whether the workload's controller has yet to replace pods
// of an older template (or to see the latest one): its pods are then not
// all of one kind, and new ones will run the new content anyway.
func (w workload) rolling(kind string) bool {
	s := w.Status
	if w.Metadata.Generation != s.ObservedGeneration {
		return true
	}
	switch kind {
	case "Deployment":
		return s.UpdatedReplicas != s.Replicas
	case "StatefulSet":
		return s.CurrentRevision != s.UpdateRevision
	case "DaemonSet":
		return s.UpdatedNumberScheduled != s.DesiredNumberScheduled
	}
	return false
}

type podContainer struct {
	Name           string    `json:"name"`
	Image          string    `json:"image"`
	ReadinessProbe *struct{} `json:"readinessProbe"`
	StartupProbe   *struct{} `json:"startupProbe"`
}

func decode(obj map[string]any, v any) error {
	b, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// patched is one workload restarted in place, until its pods run the new
// images.
type patched struct {
	ob       Object
	selector string
	rv       string // resource version of the pod list the patches follow
	eventsRV string // resource version of the events before the patches
	// before: pod name -> container name -> what it ran before the patch
	// and the image ID it must run; done when every one runs a new, ready
	// container of that image.
	before  map[string]map[string]*swap
	grace   time.Duration // longest grace period of its pods
	timeout time.Duration
	refOf   map[string]string // image ID -> engine reference, for messages
	// replaced: a patched pod went away meanwhile (deleted, evicted), so
	// the workload's controller makes another; the workload is waited for.
	replaced bool
}

// templateChanged tells whether ob's template changed since its controller
// last looked (the apply changed it), or its controller is still replacing
// pods of an older one.
func templateChanged(ctx context.Context, c dynamic.Interface, ob Object) (bool, error) {
	u, err := c.Resource(workloadResource[ob.Kind]).Namespace(cmp.Or(ob.Namespace, "default")).Get(ctx, ob.Name, metav1.GetOptions{})
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", describe(ob), err)
	}
	var w workload
	if err := decode(u.Object, &w); err != nil {
		return false, fmt.Errorf("reading %s: %w", describe(ob), err)
	}
	return w.rolling(ob.Kind), nil
}

// swap is one container restarted in place.
type swap struct {
	was string // container ID before the patch ("" when none had started)
	id  string // image ID it must run
	// byEvents: nothing but running makes the container ready (no
	// readiness or startup probe, no readiness gate), so the kubelet's
	// events may tell it is done: Pulled naming the image ID (only the new
	// spec names it) and Started, both after the patch.
	byEvents        bool
	pulled, started bool
}

// done tells whether the container status shows the swap done: a new
// container, running and ready, of the image. The CRI reports a repository
// digest rather than the ID for an image that has one; the new container
// then has to do.
func (s swap) done(cs containerStatus) bool {
	if cs.ContainerID == s.was || cs.State.Running == nil || !cs.Ready {
		return false
	}
	return cs.ImageID == s.id || !strings.HasPrefix(cs.ImageID, "sha256:")
}

// errRollout means the workload cannot be restarted in place and must be
// rolled out; it is never shown.
var errRollout = errors.New("roll out instead")

// errRolling means the workload needs no restart, only a wait: it is
// already rolling out (its template just changed, or it was just created),
// so new pods will run the new content, or its pods run it already.
var errRolling = errors.New("already rolling out")

// patchInPlace sets the image of every container of ob's live pods that
// runs one of the changed images (engine reference -> image ID) to that
// image's ID. It returns errRolling when ob's template changed since its
// controller last looked, and errRollout when a pod cannot be patched (an
// init container runs a changed image, a pod lacks the container, a pod
// went away meanwhile).
func patchInPlace(ctx context.Context, c dynamic.Interface, ob Object, changed map[string]string) (*patched, error) {
	res, ok := workloadResource[ob.Kind]
	if !ok {
		return nil, errRollout
	}
	nsName := cmp.Or(ob.Namespace, "default")
	u, err := c.Resource(res).Namespace(nsName).Get(ctx, ob.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", describe(ob), err)
	}
	var w workload
	if err := decode(u.Object, &w); err != nil {
		return nil, fmt.Errorf("reading %s: %w", describe(ob), err)
	}
	if w.rolling(ob.Kind) {
		return nil, errRolling
	}
	for _, ic := range w.Spec.Template.Spec.InitContainers {
		if _, ok := changed[ic.Image]; ok {
			return nil, errRollout // a running pod never runs its init containers again
		}
	}
	want := map[string]string{} // container name -> new image ID
	for _, tc := range w.Spec.Template.Spec.Containers {
		if id, ok := changed[tc.Image]; ok {
			want[tc.Name] = id
		}
	}
	if len(want) == 0 || w.Spec.Selector == nil {
		return nil, errRollout
	}
	sel, err := metav1.LabelSelectorAsSelector(w.Spec.Selector)
	if err != nil {
		return nil, errRollout
	}
	p := &patched{ob: ob, selector: sel.String(), before: map[string]map[string]*swap{}, refOf: map[string]string{}}
	for ref, id := range changed {
		p.refOf[id] = ref
	}
	list, err := c.Resource(podsResource).Namespace(nsName).List(ctx, metav1.ListOptions{LabelSelector: p.selector})
	if err != nil {
		return nil, fmt.Errorf("listing the pods of %s: %w", describe(ob), err)
	}
	p.rv = list.GetResourceVersion()
	type op struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value string `json:"value"`
	}
	patches := map[string][]op{}
	for _, item := range list.Items {
		var pd pod
		if err := decode(item.Object, &pd); err != nil {
			return nil, fmt.Errorf("reading the pods of %s: %w", describe(ob), err)
		}
		if pd.Metadata.DeletionTimestamp != nil {
			continue
		}
		if g := pd.Spec.TerminationGracePeriodSeconds; g != nil && time.Duration(*g)*time.Second > p.grace {
			p.grace = time.Duration(*g) * time.Second
		}
		for name, id := range want {
			i := slices.IndexFunc(pd.Spec.Containers, func(c podContainer) bool { return c.Name == name })
			if i < 0 {
				return nil, errRollout
			}
			if pd.Spec.Containers[i].Image == id || pd.runs(name, id) || !pd.hasStatus(name) {
				// Patching it would not restart it, or need not: a container
				// the kubelet has yet to start will resolve the tag, which
				// names the new content already.
				continue
			}
			if p.before[pd.Metadata.Name] == nil {
				p.before[pd.Metadata.Name] = map[string]*swap{}
			}
			ct := pd.Spec.Containers[i]
			p.before[pd.Metadata.Name][name] = &swap{was: pd.containerID(name), id: id,
				byEvents: ct.ReadinessProbe == nil && ct.StartupProbe == nil && len(pd.Spec.ReadinessGates) == 0}
			// The test keeps the index honest should the pod change meanwhile.
			patches[pd.Metadata.Name] = append(patches[pd.Metadata.Name],
				op{"test", fmt.Sprintf("/spec/containers/%d/name", i), name},
				op{"replace", fmt.Sprintf("/spec/containers/%d/image", i), id})
		}
	}
	if len(patches) == 0 {
		return nil, errRolling // nothing runs old content: wait for it to be ready
	}
	// The kubelet's events about the restarts come after this point.
	evs, err := c.Resource(eventsResource).Namespace(nsName).List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return nil, fmt.Errorf("reading the events of %s: %w", describe(ob), err)
	}
	p.eventsRV = evs.GetResourceVersion()
	for name, ops := range patches {
		b, _ := json.Marshal(ops)
		if _, err := c.Resource(podsResource).Namespace(nsName).Patch(ctx, name, types.JSONPatchType, b, metav1.PatchOptions{}); err != nil {
			if apierrors.IsNotFound(err) || apierrors.IsInvalid(err) || apierrors.IsConflict(err) || strings.Contains(err.Error(), "test operation") {
				return nil, errRollout
			}
			return nil, fmt.Errorf("restarting pod %s of %s: %w", name, describe(ob), err)
		}
	}
	return p, nil
}

// runs tells whether the pod's container runs the image with that ID (the
// CRI reports a repository digest instead when the image has one; that
// never matches, and the container is restarted).
func (p pod) runs(name, id string) bool {
	for _, c := range p.Status.ContainerStatuses {
		if c.Name == name {
			return c.ImageID == id && c.State.Running != nil
		}
	}
	return false
}

// hasStatus tells whether the kubelet reported on the pod's container.
func (p pod) hasStatus(name string) bool {
	return slices.ContainsFunc(p.Status.ContainerStatuses, func(cs containerStatus) bool { return cs.Name == name })
}

// containerID is the ID of the container the pod's status names, "" when it
// has none yet.
func (p pod) containerID(name string) string {
	for _, c := range p.Status.ContainerStatuses {
		if c.Name == name {
			return c.ContainerID
		}
	}
	return ""
}

// waitInPlace watches p's pods, and the kubelet's events about them, until
// every patched container runs a new container of the new image: the
// kubelet's Started event, after its Pulled event naming the image ID, says
// so at once, where the pod's status says so only at the kubelet's next
// relist of the containers (once a second). A container that has a
// readiness or startup probe, or a pod with readiness gates, is waited for
// until its status says ready. It fails at once, in one line, on an image
// the node does not have; alive, when set, is asked once a second. It
// returns errRollout when the pods still run their old containers after
// inPlaceWait while their grace period is longer, and after timeout names
// the pods' last events.
func (k kube) waitInPlace(ctx context.Context, c dynamic.Interface, p *patched, timeout time.Duration, alive func(context.Context) error) error {
	if len(p.before) == 0 {
		return nil
	}
	nsName := cmp.Or(p.ob.Namespace, "default")
	pods := c.Resource(podsResource).Namespace(nsName)
	p.timeout = timeout
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var fallback <-chan time.Time
	if p.grace > inPlaceWait {
		t := time.NewTimer(inPlaceWait)
		defer t.Stop()
		fallback = t.C
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	pending := map[string]bool{}
	for name := range p.before {
		pending[name] = true
	}
	settle := func(name string) {
		for _, sw := range p.before[name] {
			if !sw.byEvents || !sw.pulled || !sw.started {
				return
			}
		}
		delete(pending, name)
	}
	// check takes one pod's state; it fails on what will not get better.
	check := func(pd pod) error {
		old, ok := p.before[pd.Metadata.Name]
		if !ok || !pending[pd.Metadata.Name] {
			return nil
		}
		if pd.Metadata.DeletionTimestamp != nil {
			delete(pending, pd.Metadata.Name)
			p.replaced = true
			return nil
		}
		ready := true
		for name, sw := range old {
			i := slices.IndexFunc(pd.Status.ContainerStatuses, func(cs containerStatus) bool { return cs.Name == name })
			if i < 0 {
				ready = false // not started yet
				continue
			}
			cs := pd.Status.ContainerStatuses[i]
			if w := cs.State.Waiting; w != nil && w.Reason == "ErrImageNeverPull" {
				return fmt.Errorf("%s: image %s was not loaded into node %s: run the K3dLoad target, or make the manifest name an image this plan builds", describe(p.ob), cmp.Or(p.refOf[cs.Image], cs.Image), k.nodeName(ctx, pd.Spec.NodeName))
			}
			if sw.done(cs) {
				sw.byEvents, sw.pulled, sw.started = true, true, true // done either way
			} else {
				ready = false
			}
		}
		if ready {
			delete(pending, pd.Metadata.Name)
		}
		return nil
	}
	// event takes one of the kubelet's events about a pod.
	event := func(ev kubeEvent) {
		old, ok := p.before[ev.InvolvedObject.Name]
		if !ok || !pending[ev.InvolvedObject.Name] {
			return
		}
		for name, sw := range old {
			if ev.InvolvedObject.FieldPath != "spec.containers{"+name+"}" {
				continue
			}
			switch ev.Reason {
			case "Pulled":
				sw.pulled = sw.pulled || strings.Contains(ev.Message, sw.id)
			case "Started":
				sw.started = true
			}
		}
		settle(ev.InvolvedObject.Name)
	}
	ew, err := c.Resource(eventsResource).Namespace(nsName).Watch(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Pod", ResourceVersion: p.eventsRV})
	if err != nil {
		return fmt.Errorf("watching the events of %s: %w", describe(p.ob), err)
	}
	defer ew.Stop()
	events := ew.ResultChan()
	rv := p.rv
	for len(pending) > 0 {
		w, err := pods.Watch(ctx, metav1.ListOptions{LabelSelector: p.selector, ResourceVersion: rv, AllowWatchBookmarks: true})
		if err != nil {
			return fmt.Errorf("watching the pods of %s: %w", describe(p.ob), err)
		}
		rv, err = func() (string, error) {
			defer w.Stop()
			rv := ""
			for len(pending) > 0 {
				select {
				case <-ctx.Done():
					return "", ctx.Err()
				case <-deadline.C:
					return "", fmt.Errorf("%s was not ready within %s: %s", describe(p.ob), p.timeout, k.lastEvents(context.WithoutCancel(ctx), p.ob))
				case <-fallback:
					return "", errRollout
				case <-tick.C:
					if alive != nil {
						if err := alive(ctx); err != nil {
							return "", fmt.Errorf("waiting for %s: %w", describe(p.ob), err)
						}
					}
				case e, ok := <-events:
					if !ok || e.Type == watch.Error {
						events = nil // the pods' status still tells
						continue
					}
					var ev kubeEvent
					if u, ok := e.Object.(interface{ UnstructuredContent() map[string]any }); ok && (e.Type == watch.Added || e.Type == watch.Modified) && decode(u.UnstructuredContent(), &ev) == nil {
						event(ev)
					}
				case e, ok := <-w.ResultChan():
					if !ok {
						return rv, nil
					}
					if e.Type == watch.Error {
						return "", nil
					}
					u, ok := e.Object.(interface{ UnstructuredContent() map[string]any })
					if !ok {
						continue
					}
					var pd pod
					if decode(u.UnstructuredContent(), &pd) != nil {
						continue
					}
					rv = cmp.Or(pd.Metadata.ResourceVersion, rv)
					if e.Type == watch.Bookmark {
						continue
					}
					if e.Type == watch.Deleted && pd.Metadata.DeletionTimestamp == nil {
						pd.Metadata.DeletionTimestamp = new(string)
					}
					if err := check(pd); err != nil {
						return "", err
					}
				}
			}
			return rv, nil
		}()
		if err != nil {
			return err
		}
		if rv == "" && len(pending) > 0 {
			// The watch ended too far behind: start again from a fresh list.
			list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: p.selector})
			if err != nil {
				return fmt.Errorf("listing the pods of %s: %w", describe(p.ob), err)
			}
			for _, item := range list.Items {
				var pd pod
				if err := decode(item.Object, &pd); err == nil {
					if err := check(pd); err != nil {
						return err
					}
				}
			}
			rv = list.GetResourceVersion()
		}
	}
	return nil
}

// kubeEvent is what the in-place restart reads of an event.
type kubeEvent struct {
	InvolvedObject struct {
		Name      string `json:"name"`
		FieldPath string `json:"fieldPath"`
	} `json:"involvedObject"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}
