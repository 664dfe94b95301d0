// Package scripts holds the few shell steps that must exist before Go runs,
// embedded so that a repository importing Hoist's targets has them too.
package scripts

import _ "embed"

// EngineUp is scripts/engine-up.sh: when no Docker Engine answers, install
// (Debian's docker.io, as root or with sudo) and start one, waiting until it
// answers; with --for-tests, also the host tools Hoist's own tests use. Run
// it with bash, reading it from stdin.
//
//go:embed engine-up.sh
var EngineUp string

// ModernEngineUp is scripts/modern-engine-up.sh: build (once, cached) and
// start a Docker Engine with the containerd image store beside the classic
// one. Run it with bash, reading it from stdin; it prints the engine's
// address on its last line.
//
//go:embed modern-engine-up.sh
var ModernEngineUp string
