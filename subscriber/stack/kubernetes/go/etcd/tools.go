//go:build tools

// Package tools pins etcd for subscriber's test clusters. etcd's server module root is its main
// package, and its go.mod replaces sibling modules, so `go install` refuses it; a wrapper does not.
package tools

import _ "go.etcd.io/etcd/server/v3"
