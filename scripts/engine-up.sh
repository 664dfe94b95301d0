#!/usr/bin/env bash
# engine-up.sh: make sure a Docker Engine answers on this machine.
#
# Idempotent. On a Debian machine, as root, with no engine running it installs
# Debian's docker.io (plus docker-registry, containerd and busybox-static, which
# Hoist's registry, cluster and offline-base steps use) and starts dockerd with
# no bridge, no iptables and no forwarding, so containers never get a network of
# their own. It waits until the engine answers, then prints one line.
#
# Environment:
#   HOIST_ENGINE_WAIT  seconds to wait for the engine (default 60)
#   HOIST_DOCKERD_LOG  where dockerd writes its log (default /var/log/hoist-dockerd.log)
set -euo pipefail

wait_s=${HOIST_ENGINE_WAIT:-60}
log=${HOIST_DOCKERD_LOG:-/var/log/hoist-dockerd.log}
packages=(docker.io docker-registry containerd busybox-static)

say() { printf 'engine-up: %s\n' "$*" >&2; }

answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if answers && [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    say "missing Debian packages: ${missing[*]}; run this script as root (or: sudo apt-get install ${missing[*]})"
    exit 1
  fi
  command -v apt-get >/dev/null || { say "no apt-get here: install Docker Engine yourself, then re-run"; exit 1; }
  say "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  # A stale or empty package list makes apt-get install fail; refresh it once.
  apt-get install -y --no-install-recommends "${missing[@]}" >/tmp/hoist-apt.log 2>&1 || {
    apt-get update >/tmp/hoist-apt.log 2>&1
    apt-get install -y --no-install-recommends "${missing[@]}" >>/tmp/hoist-apt.log 2>&1 || {
      say "apt-get install failed; see /tmp/hoist-apt.log"; exit 1; }
  }
fi

if answers; then
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  say "no Docker Engine answers and starting one needs root: sudo $0"
  exit 1
fi

if ! pgrep -x dockerd >/dev/null; then
  say "starting dockerd (log: $log)"
  mkdir -p "$(dirname "$log")"
  # No bridge, no iptables, no forwarding: containers get --network none or host only.
  nohup dockerd --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
    >>"$log" 2>&1 </dev/null &
fi

for _ in $(seq 1 "$((wait_s * 4))"); do
  if answers; then
    say "Docker Engine $(docker version --format '{{.Server.Version}}') is up"
    exit 0
  fi
  sleep 0.25
done
say "dockerd did not answer within ${wait_s}s; last log lines:"
tail -n 20 "$log" >&2 || true
exit 1
