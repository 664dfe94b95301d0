//go:build tools

// Package lint pins golangci-lint in a module of its own, so Hoist's go.mod
// (which repositories importing Hoist inherit) stays lean.
package lint

import _ "github.com/golangci/golangci-lint/v2/cmd/golangci-lint"
