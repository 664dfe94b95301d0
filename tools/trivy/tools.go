//go:build tools

// Package tools pins the Trivy release Hoist scans with. It is a module of
// its own so that Hoist's go.mod stays free of Trivy's dependencies.
package tools

import _ "github.com/aquasecurity/trivy/cmd/trivy"
