//go:build tools

// Package tools pins the Kubernetes control-plane commands that subscriber's test clusters run.
// The binaries cannot be built with `go install` because k8s.io/kubernetes replaces its staging
// modules; this wrapper module names each staging module at the matching version instead.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
