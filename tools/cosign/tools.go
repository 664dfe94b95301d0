//go:build tools

// Package tools pins the cosign release Hoist's tests verify attestations
// with. It is a module of its own so that Hoist's go.mod stays free of
// cosign's dependencies.
package tools

import _ "github.com/sigstore/cosign/v2/cmd/cosign"
