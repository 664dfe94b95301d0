package cluster

// Applying manifests, in process: server-side apply through the API server
// with Hoist's field manager, forced. Each field the manifests set is owned
// by Hoist, so a hand edit of one (kubectl edit, patch, scale…) is set back
// by the next apply, and a field dropped from the manifests is removed from
// the object; fields the manifests never set are left to whoever set them,
// as kubectl's three-way apply leaves them. It replaces a `kubectl apply`
// process, whose start and discovery cost more than the apply itself on the
// dev loop.

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
)

// FieldManager is the name Hoist's applies own their fields under.
const FieldManager = "hoist"

// mapping is where the API server serves a kind.
type mapping struct {
	resource   schema.GroupVersionResource
	namespaced bool
}

// builtin maps the kinds manifests mostly hold to their resources, so the
// usual apply needs no discovery round trip; these never move within a
// Kubernetes release. Other kinds are looked up once per apply.
var builtin = func() map[schema.GroupVersionKind]mapping {
	m := map[schema.GroupVersionKind]mapping{}
	add := func(group, version, kind, resource string, namespaced bool) {
		m[schema.GroupVersionKind{Group: group, Version: version, Kind: kind}] = mapping{schema.GroupVersionResource{Group: group, Version: version, Resource: resource}, namespaced}
	}
	add("", "v1", "Namespace", "namespaces", false)
	add("", "v1", "ConfigMap", "configmaps", true)
	add("", "v1", "Secret", "secrets", true)
	add("", "v1", "Service", "services", true)
	add("", "v1", "ServiceAccount", "serviceaccounts", true)
	add("", "v1", "Pod", "pods", true)
	add("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true)
	add("", "v1", "PersistentVolume", "persistentvolumes", false)
	add("apps", "v1", "Deployment", "deployments", true)
	add("apps", "v1", "StatefulSet", "statefulsets", true)
	add("apps", "v1", "DaemonSet", "daemonsets", true)
	add("apps", "v1", "ReplicaSet", "replicasets", true)
	add("batch", "v1", "Job", "jobs", true)
	add("batch", "v1", "CronJob", "cronjobs", true)
	add("rbac.authorization.k8s.io", "v1", "Role", "roles", true)
	add("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true)
	add("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false)
	add("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false)
	add("networking.k8s.io", "v1", "Ingress", "ingresses", true)
	add("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true)
	add("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true)
	add("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", false)
	return m
}()

// manifestObject is one object of a resolved manifest file, ready to apply.
type manifestObject struct {
	file string
	obj  *unstructured.Unstructured
}

// readManifests reads every object of the resolved manifests in dir, in
// file order (as `kubectl apply -f dir` takes them).
func readManifests(dir string) ([]manifestObject, error) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading the resolved manifests: %w", err)
	}
	var out []manifestObject
	for _, e := range es {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") && !strings.HasSuffix(e.Name(), ".yml") {
			continue
		}
		f := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("reading the resolved manifests: %w", err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bufio.NewReader(bytes.NewReader(b)), 4096)
		for {
			var m map[string]any
			err := dec.Decode(&m)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			if len(m) == 0 {
				continue
			}
			out = append(out, manifestObject{file: f, obj: &unstructured.Unstructured{Object: m}})
		}
	}
	return out, nil
}

// applyPhase orders the apply: namespaces and resource definitions first,
// then what workloads refer to (service accounts, config, RBAC…), then the
// workloads; each phase is applied at once. A bare Pod naming a service
// account that is not there yet would be refused.
func applyPhase(kind string) int {
	switch kind {
	case "Namespace", "CustomResourceDefinition":
		return 0
	case "Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob":
		return 2
	}
	return 1
}

// applier applies manifests to one API server.
type applier struct {
	api        dynamic.Interface
	kubeconfig string

	once   sync.Once
	mapper meta.ResettableRESTMapper
	merr   error
}

func newApplier(kubeconfig string, api dynamic.Interface) *applier {
	return &applier{api: api, kubeconfig: kubeconfig}
}

// mappingOf finds where the API server serves gvk: the built-in table, or
// else discovery, asked once and kept for the rest of the apply; refresh
// asks again (a definition was applied meanwhile).
func (a *applier) mappingOf(gvk schema.GroupVersionKind, refresh bool) (mapping, error) {
	if m, ok := builtin[gvk]; ok {
		return m, nil
	}
	a.once.Do(func() {
		cfg, err := clientcmd.BuildConfigFromFlags("", a.kubeconfig)
		if err != nil {
			a.merr = fmt.Errorf("reading kubeconfig %s: %w", a.kubeconfig, err)
			return
		}
		dc, err := discovery.NewDiscoveryClientForConfig(cfg)
		if err != nil {
			a.merr = fmt.Errorf("kubeconfig %s: %w", a.kubeconfig, err)
			return
		}
		a.mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	})
	if a.merr != nil {
		return mapping{}, a.merr
	}
	if refresh {
		a.mapper.Reset()
	}
	rm, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return mapping{}, err
	}
	return mapping{rm.Resource, rm.Scope.Name() == meta.RESTScopeNameNamespace}, nil
}

// apply server-side applies every object of the resolved manifests in dir.
// An object the API server refuses is named in the error with its file.
func (a *applier) apply(ctx context.Context, dir string) error {
	objs, err := readManifests(dir)
	if err != nil {
		return err
	}
	var phases [3][]manifestObject
	for _, o := range objs {
		p := applyPhase(o.obj.GetKind())
		phases[p] = append(phases[p], o)
	}
	for _, phase := range phases {
		errs := make([]error, len(phase))
		var wg sync.WaitGroup
		for i, o := range phase {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = a.applyOne(ctx, o)
			}()
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return err
		}
		// One line, however many objects were refused.
		var msgs []string
		for _, err := range errs {
			if err != nil {
				msgs = append(msgs, err.Error())
			}
		}
		if len(msgs) > 0 {
			return errors.New(strings.Join(msgs, "; "))
		}
	}
	return nil
}

func (a *applier) applyOne(ctx context.Context, o manifestObject) error {
	obj := o.obj
	what := fmt.Sprintf("%s: %s %s", filepath.Base(o.file), strings.ToLower(obj.GetKind()), obj.GetName())
	gvk := obj.GroupVersionKind()
	m, err := a.mappingOf(gvk, false)
	if meta.IsNoMatchError(err) {
		// Its definition may have been applied in an earlier phase.
		m, err = a.mappingOf(gvk, true)
	}
	if err != nil {
		return fmt.Errorf("%s: the API server does not serve %s: %w", what, cmp.Or(obj.GetAPIVersion(), "(no apiVersion)"), err)
	}
	var r dynamic.ResourceInterface = a.api.Resource(m.resource)
	if m.namespaced {
		// "default" for an object naming none, as the waits read it.
		r = a.api.Resource(m.resource).Namespace(cmp.Or(obj.GetNamespace(), "default"))
	}
	if _, err := r.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: FieldManager, Force: true}); err != nil {
		return fmt.Errorf("%s: %s", what, firstLine(err.Error()))
	}
	return nil
}
