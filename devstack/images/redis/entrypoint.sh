#!/bin/sh
# Like the official image without a config file: reachable from the other containers (no protected
# mode), files in the working directory /data.
set -eu
if [ "${1:-}" = redis-server ]; then
  shift
  exec redis-server --protected-mode no --dir /data "$@"
fi
exec "$@"
