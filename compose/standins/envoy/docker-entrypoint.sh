#!/bin/sh
# Entrypoint of the envoyproxy/envoy stand-in, behaving as the official one does: arguments
# that start with "-" are Envoy's; $loglevel appends --log-level; started as root, the command
# runs as the user `envoy` (ENVOY_UID / ENVOY_GID renumber it first; ENVOY_UID=0 stays root).
set -e
if [ "${1#-}" != "$1" ]; then
  set -- envoy "$@"
fi
if [ "$1" = envoy ] && [ -n "${loglevel:-}" ]; then
  set -- "$@" --log-level "$loglevel"
fi
if [ "$(id -u)" = 0 ] && [ "${ENVOY_UID:-}" != 0 ]; then
  if [ -n "${ENVOY_UID:-}" ]; then usermod -u "$ENVOY_UID" envoy; fi
  if [ -n "${ENVOY_GID:-}" ]; then groupmod -g "$ENVOY_GID" envoy; fi
  # Envoy, no longer root, still writes to the container's log.
  chown envoy:envoy /dev/stdout /dev/stderr
  exec setpriv --reuid=envoy --regid=envoy --init-groups "$@"
fi
exec "$@"
