#!/usr/bin/env bash
# A local Redis Cluster for development and tests: one redis-server per port with
# --cluster-enabled yes (no persistence), joined by `redis-cli --cluster create`. Six ports give three
# masters with one replica each, so a master can be killed and its replica takes over.
#
#   redis-cluster.sh start    start the nodes, create the cluster once, wait until its state is ok
#   redis-cluster.sh stop     stop the nodes this script started
#   redis-cluster.sh status   exit 0 when the cluster answers with state ok
#   redis-cluster.sh kill P   SIGKILL the node on port P (failover tests); `start` brings it back
#
# Environment: REDIS_CLUSTER_PORTS (7001,...,7006), REDIS_CLUSTER_REPLICAS (1 when there are at least
# six ports, else 0), ES_LOCAL_DIR (<repo>/.local).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LOCAL_DIR=$(realpath -m "${ES_LOCAL_DIR:-$ROOT/.local}")
CLUSTER_DIR=$LOCAL_DIR/redis-cluster
IFS=, read -ra PORTS <<<"${REDIS_CLUSTER_PORTS:-7001,7002,7003,7004,7005,7006}"
REPLICAS=${REDIS_CLUSTER_REPLICAS:-$((${#PORTS[@]} >= 6 ? 1 : 0))}
START_TIMEOUT=30

die() {
  echo "redis-cluster.sh: $*" >&2
  exit 1
}

command -v redis-server >/dev/null || die "'redis-server' is not installed (Debian: apt-get install redis-server)"
command -v redis-cli >/dev/null || die "'redis-cli' is not installed (Debian: apt-get install redis-tools)"
((${#PORTS[@]} >= 3 * (REPLICAS + 1))) || die "${#PORTS[@]} ports are too few for 3 masters with $REPLICAS replicas each"

pid_of() {
  local file=$CLUSTER_DIR/$1/redis.pid pid
  [[ -f $file ]] || return 1
  pid=$(<"$file")
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qE "^redis-server .*:$1 \[cluster\]" || return 1
  echo "$pid"
}

state_ok() {
  [[ $(timeout 5 redis-cli -p "${PORTS[0]}" cluster info 2>/dev/null | tr -d '\r' | grep '^cluster_state:') == cluster_state:ok ]]
}

cmd_start() {
  local port deadline
  for port in "${PORTS[@]}"; do
    mkdir -p "$CLUSTER_DIR/$port"
    pid_of "$port" >/dev/null && continue
    if timeout 2 redis-cli -p "$port" ping >/dev/null 2>&1; then die "127.0.0.1:$port is taken by a server not started here"; fi
    # A restarted node keeps its nodes.conf (its identity and slots) and rejoins as a replica. The
    # cluster bus is port + 10000 by default, which does not exist above 55535.
    local bus=$((port + 10000))
    ((bus <= 65535)) || bus=$((port - 10000))
    redis-server --bind 127.0.0.1 --port "$port" --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-port "$bus" \
      --cluster-node-timeout 2000 --save '' --appendonly no --daemonize yes --dir "$CLUSTER_DIR/$port" \
      --pidfile "$CLUSTER_DIR/$port/redis.pid" --logfile "$CLUSTER_DIR/$port/redis.log" >/dev/null ||
      die "redis-server on $port did not start; see $CLUSTER_DIR/$port/redis.log"
  done
  for port in "${PORTS[@]}"; do
    deadline=$((SECONDS + START_TIMEOUT))
    until timeout 2 redis-cli -p "$port" ping >/dev/null 2>&1; do
      ((SECONDS < deadline)) || die "redis-server on $port did not answer PING within ${START_TIMEOUT}s"
      sleep 0.1
      pid_of "$port" >/dev/null || { tail -n 3 "$CLUSTER_DIR/$port/redis.log" >&2; die "redis-server on $port exited"; }
    done
  done
  if [[ ! -f $CLUSTER_DIR/created ]]; then
    local nodes=()
    for port in "${PORTS[@]}"; do nodes+=("127.0.0.1:$port"); done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas "$REPLICAS" --cluster-yes >"$CLUSTER_DIR/create.log" 2>&1 ||
      { tail -n 20 "$CLUSTER_DIR/create.log" >&2; die "redis-cli --cluster create failed"; }
    touch "$CLUSTER_DIR/created"
  fi
  deadline=$((SECONDS + START_TIMEOUT))
  until state_ok; do
    ((SECONDS < deadline)) || die "the cluster's state is not ok after ${START_TIMEOUT}s"
    sleep 0.2
  done
}

cmd_stop() {
  local port pid
  for port in "${PORTS[@]}"; do
    pid=$(pid_of "$port") || continue
    kill -TERM "$pid" 2>/dev/null || true
  done
  for port in "${PORTS[@]}"; do
    while pid_of "$port" >/dev/null; do sleep 0.1; done
  done
  # No persistence: a stopped cluster is gone, the next start creates a new one.
  rm -rf "$CLUSTER_DIR"
}

cmd_status() {
  if state_ok; then
    echo "redis cluster: ok on ${PORTS[*]}"
  else
    echo "redis cluster: not ok on ${PORTS[*]}"
    return 3
  fi
}

cmd_kill() {
  local pid
  pid=$(pid_of "${1:-}") || die "no node started here on port '${1:-}'"
  kill -KILL "$pid"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  kill) cmd_kill "${2:-}" ;;
  *) die "usage: redis-cluster.sh {start|stop|status|kill PORT}" ;;
esac
