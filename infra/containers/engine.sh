#!/usr/bin/env bash
# Docker-compatible container engine for the integration tests: Debian's rootful podman serving the
# Docker API on a unix socket (there is no Docker engine on our machines and no registry to pull from).
#
#   engine.sh up      install podman if missing, configure it, start the API service; prints the
#                     `export ...` line to eval: eval "$(bash infra/containers/engine.sh up)"
#   engine.sh down    remove test containers and networks, stop the API service
#   engine.sh status  say whether the API answers (exit 1 if not)
set -euo pipefail

SOCKET_PATH=/run/ensemble-stream-podman.sock
PID_FILE=/run/ensemble-stream-podman.pid
LOG_FILE=/run/ensemble-stream-podman.log
CONF_FILE=/etc/containers/containers.conf
TEST_LABEL=org.testcontainers=true
PACKAGES=(podman runc netavark aardvark-dns iptables uidmap slirp4netns fuse-overlayfs debootstrap curl)

die() { echo "engine.sh: $*" >&2; exit 1; }

api_answers() {
  [[ -S $SOCKET_PATH ]] && curl -fsS --max-time 2 --unix-socket "$SOCKET_PATH" http://d/_ping >/dev/null 2>&1
}

service_pid() {
  local pid
  [[ -f $PID_FILE ]] || return 1
  pid=$(<"$PID_FILE")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

install_packages() {
  local missing=() pkg
  for pkg in "${PACKAGES[@]}"; do
    [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) == *'ok installed' ]] || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0
  local log
  log=$(mktemp)
  if ! { apt-get -o DPkg::Lock::Timeout=120 update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -qq \
      --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    die "could not install: ${missing[*]}"
  fi
  rm -f "$log"
}

# Root here lacks CAP_SYS_RESOURCE, so the OCI runtime must not try to raise rlimits above the hard
# limits we already have; crun also refuses this host's hybrid cgroups, runc does not.
desired_conf() {
  local nofile nproc pid_max
  nofile=$(ulimit -Hn)
  nproc=$(ulimit -Hu)
  pid_max=$(</proc/sys/kernel/pid_max)
  if [[ $nproc == unlimited ]] || ((nproc > pid_max)); then nproc=$pid_max; fi
  if [[ $nofile == unlimited ]]; then nofile=1048576; fi
  cat <<EOF
# Written by ensemble-stream infra/containers/engine.sh.
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]

[engine]
runtime = "runc"
EOF
}

configure() {
  local desired
  desired=$(desired_conf)
  if [[ -f $CONF_FILE && "$(<"$CONF_FILE")" == "$desired" ]]; then
    return 0
  fi
  if [[ -f $CONF_FILE ]] && ! grep -q 'ensemble-stream' "$CONF_FILE"; then
    cp "$CONF_FILE" "$CONF_FILE.before-ensemble-stream"
  fi
  mkdir -p "$(dirname "$CONF_FILE")"
  printf '%s\n' "$desired" >"$CONF_FILE"
  # A running service keeps the old settings.
  if service_pid >/dev/null; then stop_service; fi
}

# A service started from a directory that was deleted since answers the API but cannot start a
# container: conmon inherits the working directory and fails ("write child: broken pipe").
cwd_deleted() {
  [[ $(readlink "/proc/$1/cwd" 2>/dev/null) == *' (deleted)' ]]
}

start_service() {
  local pid
  if pid=$(service_pid) && api_answers && ! cwd_deleted "$pid"; then return 0; fi
  if service_pid >/dev/null; then stop_service; fi
  rm -f "$SOCKET_PATH"
  # setsid: the service must outlive the shell (and process group) that started it; from /, so that
  # no checkout it was started in can disappear under it.
  (cd / && exec setsid podman system service --time=0 "unix://$SOCKET_PATH" </dev/null >"$LOG_FILE" 2>&1) &
  echo $! >"$PID_FILE"
  local i
  for ((i = 0; i < 100; i++)); do
    api_answers && return 0
    kill -0 "$(<"$PID_FILE")" 2>/dev/null || break
    sleep 0.1
  done
  tail -n 20 "$LOG_FILE" >&2 || true
  die "podman API did not answer on $SOCKET_PATH (log: $LOG_FILE)"
}

stop_service() {
  local pid i
  pid=$(service_pid) || { rm -f "$PID_FILE"; return 0; }
  kill "$pid"
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && die "podman service (pid $pid) did not stop"
  rm -f "$PID_FILE" "$SOCKET_PATH"
}

remove_test_resources() {
  command -v podman >/dev/null || return 0
  local ids
  mapfile -t ids < <(podman ps -aq --filter "label=$TEST_LABEL")
  ((${#ids[@]} == 0)) || podman rm -f -t 0 "${ids[@]}" >/dev/null
  mapfile -t ids < <(podman network ls -q --filter "label=$TEST_LABEL")
  ((${#ids[@]} == 0)) || podman network rm -f "${ids[@]}" >/dev/null
}

print_env() {
  echo "export DOCKER_HOST=unix://$SOCKET_PATH TESTCONTAINERS_HOST_OVERRIDE=localhost TESTCONTAINERS_RYUK_DISABLED=true"
}

case "${1:-}" in
  up)
    ((EUID == 0)) || die "must run as root (rootful podman)"
    install_packages
    configure
    start_service
    print_env
    ;;
  down)
    remove_test_resources
    stop_service
    ;;
  status)
    if api_answers; then
      echo "podman API answers on unix://$SOCKET_PATH (pid $(service_pid || echo '?'))"
    else
      echo "podman API not running (start it: bash infra/containers/engine.sh up)" >&2
      exit 1
    fi
    ;;
  *)
    die "usage: engine.sh {up|down|status}"
    ;;
esac
