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
#     ctr, so Debian's containerd, which conflicts with it, is never added).
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
fi

if answers; then
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
