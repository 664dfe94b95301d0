//go:build tools

// Package tools pins the Fulcio release Hoist's tests issue keyless signing
// certificates with. It is a module of its own so that Hoist's go.mod stays
// free of Fulcio's dependencies.
package tools

import _ "github.com/sigstore/fulcio"
