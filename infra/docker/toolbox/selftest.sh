#!/bin/busybox sh
# Runs inside the toolbox image: the scripts are there and busybox works.
set -e
/bin/busybox test -s /usr/share/hoist/engine-up.sh
/bin/busybox sh -n /usr/share/hoist/engine-up.sh
echo "ok: toolbox"
