//go:build tools

// Package tools pins the standalone buildkitd the remote-builder tests run.
// It is a module of its own so that Hoist's go.mod stays free of the
// daemon's dependencies.
package tools

import _ "github.com/moby/buildkit/cmd/buildkitd"
