#!/usr/bin/env bash
# lint.sh: run the pinned golangci-lint over Hoist.
#
# The linter lives in its own module (tools/lint) so Hoist's go.mod stays lean
# for repositories that import it. It is built once into tools/bin and reused
# while the pin in tools/lint/go.mod is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
pin=$(grep -oE 'github.com/golangci/golangci-lint/v2 v[0-9][^ ]*' tools/lint/go.mod | head -n 1 | cut -d' ' -f2)
[ -n "$pin" ] || { echo "lint: no golangci-lint version in tools/lint/go.mod" >&2; exit 1; }
bin=tools/bin/golangci-lint-$pin
if [ ! -x "$bin" ]; then
  echo "lint: building golangci-lint $pin (once; a few minutes)" >&2
  mkdir -p tools/bin
  (cd tools/lint && go build -o "../bin/.golangci-lint-$pin.$$" github.com/golangci/golangci-lint/v2/cmd/golangci-lint)
  mv "tools/bin/.golangci-lint-$pin.$$" "$bin"
fi
exec "$bin" run ./...
