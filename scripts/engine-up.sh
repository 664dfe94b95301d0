#!/usr/bin/env bash
# engine-up.sh: make sure a Docker Engine answers on this machine, and with
# --for-tests that the host tools Hoist's own tests use are there too.
#
# Idempotent, and it installs only what is missing, saying what and why:
#   - When an engine answers (a GitHub runner's Docker CE, Docker Desktop, a
#     remote DOCKER_HOST), nothing engine-related is installed or started.
#   - When none answers: Debian's docker.io is installed if dockerd is not on
#     PATH, and dockerd is started with no bridge, no iptables and no
#     forwarding, so containers never get a network of their own.
#   - --for-tests: the CNCF distribution registry (docker-registry), a static
#     busybox (busybox-static), containerd and ctr, and sudo, each only when
#     not found on PATH (a runner's containerd.io provides containerd and
#     ctr, so Debian's containerd, which conflicts with it, is never added);
#     and for the in-cluster tests' Kubernetes node: etcd (etcd-server), runc
#     and the CNI plugins (containernetworking-plugins).
#   - --for-tests, on a machine that is not arm64 itself: arm64 emulation for
#     the multi-platform tests. Debian's qemu-user-static is installed when
#     /usr/bin/qemu-aarch64-static is missing, binfmt_misc is mounted when it
#     is not, and the aarch64 handler is registered from
#     /usr/lib/binfmt.d/qemu-aarch64.conf with the F flag (the kernel opens
#     the interpreter at registration, so it also works inside containers,
#     whose root has no qemu). An enabled handler already there is kept.
#   - On a machine whose capability bounding set lacks CAP_SYS_RESOURCE (some
#     VMs), the engine refuses every privileged container ("unable to apply
#     caps"). There a runc wrapper that drops that one capability from the
#     container's config is installed and registered as the extra runtime
#     hoist-runc in /etc/docker/daemon.json, and the running engines reload
#     their configuration (SIGHUP). Nothing else about the engine changes.
# Installing and starting use apt-get and need root: as another user the
# script uses `sudo -n` when that works, and otherwise says in one line what
# to install (for a test tool outside CI that is a note: those tests skip).
#
# Environment:
#   HOIST_ENGINE_WAIT  seconds to wait for the engine (default 60)
#   HOIST_DOCKERD_LOG  where dockerd writes its log (default /var/log/hoist-dockerd.log)
#   HOIST_DOCKERD_ROOT a folder for a private engine of its own (data, exec
#                      root, pid file), started on DOCKER_HOST's unix socket
#                      beside any engine already running on the default one
set -euo pipefail

wait_s=${HOIST_ENGINE_WAIT:-60}
log=${HOIST_DOCKERD_LOG:-/var/log/hoist-dockerd.log}
root_dir=${HOIST_DOCKERD_ROOT:-}
for_tests=
case "${1:-}" in
  --for-tests) for_tests=1 ;;
  "") ;;
  *) printf 'engine-up: unknown argument %q: use no argument, or --for-tests\n' "$1" >&2; exit 2 ;;
esac

say() { printf 'engine-up: %s\n' "$*" >&2; }

answers() { command -v docker >/dev/null && docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# as_root runs a command as root: directly when root, with sudo -n when this
# user may, and fails otherwise.
as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    return 1
  fi
}

can_root() { [ "$(id -u)" = 0 ] || { command -v sudo >/dev/null && sudo -n true 2>/dev/null; }; }

# static_busybox: a busybox on PATH that runs in a FROM-scratch image.
static_busybox() {
  local bb
  bb=$(command -v busybox) || return 1
  ! ldd "$bb" >/dev/null 2>&1
}

# apt_install PACKAGE… installs with apt-get (as root or through sudo),
# refreshing a stale or empty package list once.
apt_install() {
  command -v apt-get >/dev/null || { say "no apt-get here: install $* yourself, then run again"; exit 1; }
  local aptlog
  aptlog=$(mktemp "${TMPDIR:-/tmp}/hoist-apt.XXXXXX")
  # Wait for a package manager another process holds instead of failing.
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120)
  as_root "${apt[@]}" install -y --no-install-recommends "$@" >"$aptlog" 2>&1 || {
    as_root "${apt[@]}" update >>"$aptlog" 2>&1 || true
    as_root "${apt[@]}" install -y --no-install-recommends "$@" >>"$aptlog" 2>&1 || {
      say "apt-get install $* failed; see $aptlog"; exit 1; }
  }
  rm -f "$aptlog"
}

in_ci() { case "${CI:-}" in 1|true|TRUE|True|yes) return 0 ;; esac; return 1; }

# need PACKAGE REASON: install a tool the tests use, or say what to install
# when this machine cannot (not root and no sudo, or no apt-get). Outside CI
# that is a note, since those tests then skip; in CI, where no test may
# skip, it is an error.
need() {
  if ! can_root || ! command -v apt-get >/dev/null; then
    local why="this user can install nothing (not root, no sudo)"
    command -v apt-get >/dev/null || why="there is no apt-get here"
    if in_ci; then
      say "$2, and $why: install $1 (Debian/Ubuntu: sudo apt-get install $1), then run again"
      exit 1
    fi
    say "$2, and $why: the tests that need it will skip (install $1 to run them)"
    return 0
  fi
  say "installing $1 with apt-get: $2"
  apt_install "$1"
}

if [ -n "$for_tests" ]; then
  command -v docker-registry >/dev/null ||
    need docker-registry "the integration tests run the CNCF distribution registry and docker-registry is not on PATH"
  static_busybox ||
    need busybox-static "the tests make base images from a static busybox and none is on PATH"
  { command -v containerd >/dev/null && command -v ctr >/dev/null; } ||
    need containerd "the cluster tests' stand-in node runs containerd and ctr, which are not on PATH"
  command -v sudo >/dev/null ||
    need sudo "the GitHub-runner test runs steps as a user with sudo, and sudo is not on PATH"
  command -v etcd >/dev/null ||
    need etcd-server "the in-cluster tests' Kubernetes node keeps its state in etcd, which is not on PATH"
  command -v runc >/dev/null ||
    need runc "the in-cluster tests' Kubernetes node runs pods with runc, which is not on PATH"
  [ -x /usr/lib/cni/bridge ] ||
    need containernetworking-plugins "the in-cluster tests' Kubernetes node wires pods with the CNI bridge plugin, which is not in /usr/lib/cni"
fi

# arm64_emulation makes `docker run --platform linux/arm64` work on a
# machine of another architecture (see the header). Quiet when already done.
binfmt=/proc/sys/fs/binfmt_misc
arm64_emulation() {
  case "$(uname -m)" in aarch64|arm64) return 0 ;; esac
  # Docker Desktop, a runner's tonistiigi/binfmt or an earlier run: keep it,
  # unless it lacks F (then containers cannot use it, and it is replaced).
  grep -qx enabled "$binfmt/qemu-aarch64" 2>/dev/null &&
    grep -q '^flags: .*F' "$binfmt/qemu-aarch64" && return 0
  local conf=/usr/lib/binfmt.d/qemu-aarch64.conf
  if ! [ -x /usr/bin/qemu-aarch64-static ] || ! [ -s "$conf" ]; then
    need qemu-user-static "the multi-platform tests run arm64 images under emulation and qemu-aarch64-static is not installed"
    [ -s "$conf" ] || return 0 # need said why it could not install
  fi
  if ! can_root; then
    local why="arm64 emulation needs the aarch64 handler registered in $binfmt, and this user is not root and has no sudo"
    if in_ci; then say "$why: run sudo bash scripts/engine-up.sh --for-tests, then run again"; exit 1; fi
    say "$why: the arm64 tests will skip (run sudo bash scripts/engine-up.sh --for-tests to run them)"
    return 0
  fi
  if ! [ -e "$binfmt/register" ]; then
    as_root mount -t binfmt_misc binfmt_misc "$binfmt" || {
      say "mounting binfmt_misc on $binfmt failed: arm64 emulation needs it (a container needs --privileged for this)"; exit 1; }
  fi
  # The rule's last field holds the flags; F makes the kernel keep the
  # interpreter open, so containers without qemu in them can use it.
  local rule
  rule=$(grep -v '^#' "$conf" | head -n 1)
  case "${rule##*:}" in *F*) ;; *) rule="${rule}F" ;; esac
  # A disabled or stale entry of the same name blocks registration.
  [ -e "$binfmt/qemu-aarch64" ] && { printf -- '-1' | as_root sh -c 'cat >"$1"' sh "$binfmt/qemu-aarch64" || true; }
  say "registering the aarch64 handler in $binfmt (flags ${rule##*:}): arm64 images run under emulation"
  printf '%s' "$rule" | as_root sh -c 'cat >"$1"' sh "$binfmt/register" || {
    say "registering $conf in $binfmt/register failed: arm64 images cannot run here"; exit 1; }
}

if [ -n "$for_tests" ]; then
  arm64_emulation
fi

runtime_name=hoist-runc
runtime_path=/usr/local/libexec/hoist/hoist-runc
daemon_json=/etc/docker/daemon.json

# lacks_sys_resource: this machine's capability bounding set lacks
# CAP_SYS_RESOURCE (bit 24), so the engine cannot grant it to anyone.
lacks_sys_resource() {
  local bnd
  bnd=$(sed -n 's/^CapBnd:[[:space:]]*//p' /proc/self/status 2>/dev/null) || return 1
  [ -n "$bnd" ] && [ $(( (16#$bnd >> 24) & 1 )) = 0 ]
}

# local_engine: DOCKER_HOST names no other engine than this machine's default one.
local_engine() {
  case "${DOCKER_HOST:-}" in ""|unix:///var/run/docker.sock|unix:///run/docker.sock) return 0 ;; esac
  return 1
}

# register_runtime installs the runc wrapper and registers it with the
# engines that read /etc/docker/daemon.json (the default one and any private
# one started by scripts/modern-engine-up.sh), then makes them reload.
register_runtime() {
  lacks_sys_resource && can_root && local_engine || return 0
  if ! [ -x "$runtime_path" ] || ! grep -q 'hoist-runc v2' "$runtime_path"; then
    say "installing $runtime_path: this machine lacks CAP_SYS_RESOURCE, so privileged containers need a runc that does not ask for it"
    as_root mkdir -p "$(dirname "$runtime_path")"
    as_root sh -c 'cat >"$1.tmp" && chmod 755 "$1.tmp" && mv "$1.tmp" "$1"' sh "$runtime_path" <<'WRAPPER'
#!/bin/sh
# hoist-runc v2: runc without CAP_SYS_RESOURCE. This machine's capability
# bounding set lacks it, so runc fails every container, and every exec into
# one, that asks for it (privileged ones always do). Installed by Hoist's
# scripts/engine-up.sh.
prev=
for a in "$@"; do
  f=
  case "$prev" in --bundle|-b) f=$a/config.json ;; --process|-p) f=$a ;; esac
  case "$a" in --bundle=*) f=${a#--bundle=}/config.json ;; --process=*) f=${a#--process=} ;; esac
  if [ -n "$f" ] && [ -f "$f" ] && grep -q '"CAP_SYS_RESOURCE"' "$f"; then
    sed -i -e 's/"CAP_SYS_RESOURCE",//g' -e 's/,"CAP_SYS_RESOURCE"//g' -e 's/\["CAP_SYS_RESOURCE"\]/[]/g' "$f"
  fi
  prev=$a
done
exec runc "$@"
WRAPPER
  fi
  local changed=
  if ! [ -s "$daemon_json" ]; then
    as_root mkdir -p "$(dirname "$daemon_json")"
    printf '{\n  "runtimes": {\n    "%s": {"path": "%s"}\n  }\n}\n' "$runtime_name" "$runtime_path" |
      as_root sh -c 'cat >"$1"' sh "$daemon_json"
    changed=1
  elif ! grep -q "\"$runtime_name\"" "$daemon_json"; then
    command -v jq >/dev/null || need jq "registering the $runtime_name runtime edits $daemon_json"
    local merged
    merged=$(jq --arg n "$runtime_name" --arg p "$runtime_path" '.runtimes[$n] = {path: $p}' "$daemon_json") || {
      say "$daemon_json is not valid JSON: fix it, then run again"; exit 1; }
    printf '%s\n' "$merged" | as_root sh -c 'cat >"$1.tmp" && mv "$1.tmp" "$1"' sh "$daemon_json"
    changed=1
  fi
  # Reload every engine reading that file whose runtimes lack the wrapper
  # (one started after the file was written has it already).
  local pidfile pid
  for pidfile in /var/run/docker.pid /run/hoist-modern/dockerd.pid; do
    pid=$(cat "$pidfile" 2>/dev/null) || continue
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || continue
    if [ -n "$changed" ] || ! grep -q "$runtime_name" <(docker_info_runtimes "$pidfile"); then
      say "registering runtime $runtime_name with dockerd (pid $pid): reloading its configuration (SIGHUP)"
      as_root kill -HUP "$pid"
    fi
  done
}

# docker_info_runtimes PIDFILE prints the runtimes the engine of that pidfile lists.
docker_info_runtimes() {
  local host=
  case "$1" in /run/hoist-modern/*) host=unix:///run/hoist-modern/docker.sock ;; esac
  DOCKER_HOST=${host:-${DOCKER_HOST:-}} docker info --format '{{json .Runtimes}}' 2>/dev/null || true
}

if answers; then
  register_runtime
  exit 0
fi

if ! can_root; then
  say "no Docker Engine answers${DOCKER_HOST:+ at $DOCKER_HOST}, and this user can neither install nor start one (not root, no sudo): install Docker Engine (Debian/Ubuntu: sudo apt-get install docker.io; macOS, Windows: Docker Desktop; elsewhere: https://docs.docker.com/engine/install/), start it, then run again"
  exit 1
fi

if ! command -v dockerd >/dev/null; then
  say "installing docker.io with apt-get: no Docker Engine answers and dockerd is not installed"
  apt_install docker.io
  answers && exit 0 # the package may start its own service
fi

# No bridge, no iptables, no forwarding: containers get --network none or host only.
args=(dockerd --bridge=none --iptables=false --ip-forward=false --ip-masq=false)
if [ -n "$root_dir" ]; then
  case "${DOCKER_HOST:-}" in
    unix://*) ;;
    *) say "HOIST_DOCKERD_ROOT needs DOCKER_HOST=unix:///PATH/TO/SOCKET for the private engine"; exit 1 ;;
  esac
  args+=(-H "$DOCKER_HOST" --data-root "$root_dir/data" --exec-root "$root_dir/exec" --pidfile "$root_dir/dockerd.pid")
fi
if [ -n "$root_dir" ] || ! pgrep -x dockerd >/dev/null; then
  say "starting dockerd: no Docker Engine answers${DOCKER_HOST:+ at $DOCKER_HOST} (log: $log)"
  as_root mkdir -p "$(dirname "$log")" ${root_dir:+"$root_dir"}
  as_root sh -c 'log=$1; shift; nohup "$@" >>"$log" 2>&1 </dev/null &' sh "$log" "${args[@]}"
fi

for _ in $(seq 1 "$((wait_s * 4))"); do
  if answers; then
    say "Docker Engine $(docker version --format '{{.Server.Version}}') is up"
    register_runtime
    exit 0
  fi
  sleep 0.25
done
if [ "$(id -u)" != 0 ] && as_root docker version >/dev/null 2>&1; then
  say "dockerd runs, but $(id -un) may not use its socket: sudo usermod -aG docker $(id -un), log in again, then run again"
  exit 1
fi
say "dockerd did not answer within ${wait_s}s; last log lines:"
as_root tail -n 20 "$log" >&2 || true
exit 1
