// Package scripts holds the few shell steps that must exist before Go runs,
// embedded so that a repository importing Hoist's targets has them too.
package scripts

import _ "embed"

// EngineUp is scripts/engine-up.sh: install (Debian, root) and start a Docker
// Engine, waiting until it answers. Run it with bash, reading it from stdin.
//
//go:embed engine-up.sh
var EngineUp string
