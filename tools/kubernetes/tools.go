//go:build tools

// Package tools pins the Kubernetes release Hoist's test node runs. It is a
// module of its own so that Hoist's go.mod stays free of Kubernetes' own
// dependencies; listing every command keeps `go mod tidy` complete for each.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
