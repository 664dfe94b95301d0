#!/usr/bin/env bash
# modern-engine-up.sh: make sure a modern Docker Engine (the moby v2 daemon,
# images kept in containerd's image store) answers beside the classic one.
#
# Idempotent. Builds dockerd and runc from the Go module proxy once into a
# cache shared by every checkout (under a file lock, so concurrent runs build
# once), installs the Debian packages they need (as root), and starts dockerd
# on its own socket, data root, exec root and pidfile, with no bridge, no
# iptables and no forwarding. The classic engine is left alone.
#
# Prints one line on stdout: the engine's address, for DOCKER_HOST or
# HOIST_MODERN_ENGINE. Progress goes to stderr.
#
# Environment:
#   HOIST_MODERN_ROOT   parent of the engine's socket, exec root and pidfile
#                       (default /run/hoist-modern; keep it short: unix
#                       socket paths are limited to ~100 bytes)
#   HOIST_MODERN_DATA   the engine's data root (default /var/lib/hoist-modern)
#   HOIST_TOOLS_DIR     where pinned tools are built (default ~/.cache/hoist/tools)
#   HOIST_ENGINE_WAIT   seconds to wait for the engine (default 60)
#   HOIST_DOCKERD_LOG   dockerd's log (default /var/log/hoist-modern-dockerd.log)
set -euo pipefail

moby_module=github.com/moby/moby/v2
moby_version=v2.0.0-beta.24
runc_module=github.com/opencontainers/runc
runc_version=v1.2.6
packages=(containerd libseccomp-dev pkg-config)

root=${HOIST_MODERN_ROOT:-/run/hoist-modern}
data=${HOIST_MODERN_DATA:-/var/lib/hoist-modern}
cache=${HOIST_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hoist/tools}
wait_s=${HOIST_ENGINE_WAIT:-60}
log=${HOIST_DOCKERD_LOG:-/var/log/hoist-modern-dockerd.log}
sock=$root/docker.sock
addr=unix://$sock
dockerd_bin=$cache/moby-$moby_version/dockerd
runc_bin=$cache/runc-$runc_version/runc

say() { printf 'modern-engine-up: %s\n' "$*" >&2; }

# answers asks the engine's API directly, so no docker CLI is needed.
answers() {
  [ -S "$sock" ] && curl -fsS --max-time 2 --unix-socket "$sock" http://engine/_ping >/dev/null 2>&1
}

if answers; then
  echo "$addr"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  say "no modern engine answers at $addr and starting one needs root: sudo bash scripts/modern-engine-up.sh"
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || { say "no apt-get here: install ${missing[*]} yourself, then re-run"; exit 1; }
  say "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${missing[@]}" >/tmp/hoist-modern-apt.log 2>&1 || {
    apt-get update >>/tmp/hoist-modern-apt.log 2>&1
    apt-get install -y --no-install-recommends "${missing[@]}" >>/tmp/hoist-modern-apt.log 2>&1 || {
      say "apt-get install ${missing[*]} failed; see /tmp/hoist-modern-apt.log"; exit 1; }
  }
fi
command -v go >/dev/null || { say "building dockerd and runc needs Go on PATH (https://go.dev/dl)"; exit 1; }

# build MODULE VERSION OUT TAGS [CGO]: go build the module's main package
# from a writable copy of its module-cache folder (the cache is read-only,
# and -mod=mod needs to write go.sum).
build() {
  local module=$1 version=$2 out=$3 tags=$4 cgo=$5 pkg=$6 dir work
  [ -x "$out" ] && return 0
  say "building $module@$version once into $(dirname "$out") (a few minutes)"
  # From / : outside any module, so no go.mod or go.sum is touched.
  dir=$(cd / && GOFLAGS=-mod=mod GOWORK=off go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] || { say "go mod download $module@$version found no folder"; exit 1; }
  work=$(mktemp -d)
  cp -r "$dir/." "$work/"
  chmod -R u+w "$work"
  mkdir -p "$(dirname "$out")"
  (cd "$work" && CGO_ENABLED=$cgo GOFLAGS=-mod=mod go build -trimpath -tags "$tags" -o "$out.tmp" "$pkg") \
    >"$out.build.log" 2>&1 || { say "building $module@$version failed; see $out.build.log"; rm -rf "$work"; exit 1; }
  mv "$out.tmp" "$out"
  rm -rf "$work"
}

mkdir -p "$cache"
(
  # One build per machine however many runs start at once; the others wait.
  flock 9
  build "$moby_module" "$moby_version" "$dockerd_bin" \
    "exclude_graphdriver_btrfs no_btrfs exclude_disk_quota" 0 ./cmd/dockerd
  # Debian's runc is too old for this daemon; seccomp needs cgo and libseccomp.
  build "$runc_module" "$runc_version" "$runc_bin" seccomp 1 .
) 9>"$cache/modern-engine.lock"

mkdir -p "$root" "$data" "$(dirname "$log")"
(
  flock 9
  if ! answers; then
    pid=$(cat "$root/dockerd.pid" 2>/dev/null || true)
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
      say "starting dockerd $moby_version with the containerd image store (log: $log)"
      rm -f "$sock" "$root/dockerd.pid"
      # runc first on PATH: dockerd runs the runc it finds there. The lock's
      # descriptor is closed for it: a daemon holding it would make every
      # later run that finds the engine down wait here for ever.
      PATH="$(dirname "$runc_bin"):$PATH" nohup "$dockerd_bin" \
        --data-root "$data" --exec-root "$root/exec" --pidfile "$root/dockerd.pid" \
        -H "$addr" --bridge=none --iptables=false --ip6tables=false \
        --ip-forward=false --ip-masq=false \
        --feature containerd-snapshotter=true >>"$log" 2>&1 </dev/null 9>&- &
    fi
  fi
  # Waited for under the lock, so a run that starts meanwhile finds the
  # engine answering instead of starting a second one.
  for _ in $(seq 1 "$((wait_s * 4))"); do
    answers && exit 0
    sleep 0.25
  done
  say "dockerd at $addr did not answer within ${wait_s}s; last log lines:"
  tail -n 20 "$log" >&2 || true
  exit 1
) 9>"$root/start.lock"
echo "$addr"
