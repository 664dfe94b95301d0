//go:build tools

// Package tools pins docker buildx, the anchor of the Images benchmark
// (`docker buildx bake`), built from the module proxy rather than linked in.
package tools

import _ "github.com/docker/buildx/cmd/buildx"
