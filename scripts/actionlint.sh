#!/usr/bin/env bash
# actionlint.sh: run the pinned actionlint over .github/workflows.
#
# Like lint.sh: the linter lives in its own module (tools/actionlint), is
# built once from the Go module proxy into tools/bin and reused while the pin
# in tools/actionlint/go.mod is unchanged. shellcheck and pyflakes are turned
# off so the result is the same on every machine, whether or not they are
# installed (a GitHub runner has shellcheck, a fresh machine does not).
set -euo pipefail
cd "$(dirname "$0")/.."
pin=$(grep -oE 'github.com/rhysd/actionlint v[0-9][^ ]*' tools/actionlint/go.mod | head -n 1 | cut -d' ' -f2)
[ -n "$pin" ] || { echo "actionlint: no actionlint version in tools/actionlint/go.mod" >&2; exit 1; }
bin=tools/bin/actionlint-$pin
if [ ! -x "$bin" ]; then
  echo "actionlint: building actionlint $pin (once)" >&2
  mkdir -p tools/bin
  (cd tools/actionlint && go build -o "../bin/.actionlint-$pin.$$" github.com/rhysd/actionlint/cmd/actionlint)
  mv "tools/bin/.actionlint-$pin.$$" "$bin"
fi
exec "$bin" -shellcheck= -pyflakes= "$@"
