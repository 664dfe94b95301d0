#!/bin/sh
# Runs inside every demo image: checks the entry the image was built for.
set -e
test -n "$PYTHON_VERSION" || { echo "PYTHON_VERSION is not set"; exit 1; }
grep -q "python=$PYTHON_VERSION runtime=$RUNTIME" /app/entry || { echo "entry mismatch: $(cat /app/entry)"; exit 1; }
if [ "$RUNTIME" = cuda ] && [ "$HOIST_DEMO_ACCELERATOR" != cuda ]; then
  echo "cuda image without HOIST_DEMO_ACCELERATOR"; exit 1
fi
echo "ok: $(cat /app/entry)"
