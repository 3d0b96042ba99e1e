//go:build tools

// Package tools pins kwok, which simulates the nodes and kubelets of subscriber's test clusters.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
