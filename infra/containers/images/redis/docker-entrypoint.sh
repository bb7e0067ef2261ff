#!/bin/sh
# The official redis image's server is built with protected mode off, so any redis-server command
# given to it (docker-compose.yml's, for one) takes connections through the port mapping. Debian's
# is not: this puts --protected-mode no in front of the command's own options, which can still turn
# it back on. Like the official entrypoint, arguments starting with "-" are redis-server's.
set -eu
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
  set -- redis-server "$@"
fi
if [ "$1" = redis-server ]; then
  shift
  case "${1:-}" in
    # Options that must come alone.
    -v | --version | -h | --help | --test-memory | --check-system) exec redis-server "$@" ;;
  esac
  # A configuration file comes first, before any option.
  if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
    conf=$1
    shift
    exec redis-server "$conf" --protected-mode no "$@"
  fi
  exec redis-server --protected-mode no "$@"
fi
exec "$@"
