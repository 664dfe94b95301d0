//go:build tools

// Package actionlint pins actionlint, the workflow linter, in a module of its
// own, so Hoist's go.mod (which repositories importing Hoist inherit) stays lean.
package actionlint

import _ "github.com/rhysd/actionlint/cmd/actionlint"
