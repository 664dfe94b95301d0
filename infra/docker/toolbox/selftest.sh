#!/bin/busybox sh
# Runs inside the toolbox image: busybox works and Hoist's scripts are there.
set -e
/bin/busybox test -s /usr/share/hoist/engine-up.sh
/bin/busybox head -n 1 /usr/share/hoist/engine-up.sh | /bin/busybox grep -q '^#!/usr/bin/env bash'
/bin/busybox grep -q 'dockerd --bridge=none' /usr/share/hoist/engine-up.sh
echo "ok: toolbox"
