#!/usr/bin/env bash
# A local Apache Kafka cluster of several KRaft nodes (each broker and controller in one JVM, one
# controller quorum of all of them), built from kafka.sh: the same Maven Central jars, one classpath
# shared by every node, state under $ES_LOCAL_DIR/kafka-cluster/node-<id>.
#
#   kafka-cluster.sh start    format once (one cluster id), start every node, wait until each answers
#   kafka-cluster.sh stop     stop the nodes this script started
#   kafka-cluster.sh status   one line per node; exit 0 when every node answers
#   kafka-cluster.sh kill N   SIGKILL node N (failover tests); `start` brings it back
#
# Environment: KAFKA_CLUSTER_PORTS (9092,9093,9094: one client port per node, their count is the
# size of the cluster), KAFKA_CLUSTER_CONTROLLER_PORTS (9192,9193,9194), KAFKA_REPLICATION (3, at
# most the node count) and KAFKA_MIN_ISR (2) for the internal topics and the broker defaults,
# ES_LOCAL_DIR (<repo>/.local), and kafka.sh's KAFKA_HEAP_OPTS, KAFKA_START_TIMEOUT, KAFKA_SCRAM_*.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LOCAL_DIR=$(realpath -m "${ES_LOCAL_DIR:-$ROOT/.local}")
CLUSTER_DIR=$LOCAL_DIR/kafka-cluster
IFS=, read -ra PORTS <<<"${KAFKA_CLUSTER_PORTS:-9092,9093,9094}"
IFS=, read -ra CONTROLLER_PORTS <<<"${KAFKA_CLUSTER_CONTROLLER_PORTS:-9192,9193,9194}"
NODES=${#PORTS[@]}
REPLICATION=${KAFKA_REPLICATION:-$((NODES < 3 ? NODES : 3))}
MIN_ISR=${KAFKA_MIN_ISR:-$((REPLICATION > 1 ? REPLICATION - 1 : 1))}
# The quorum's start-up waits for a majority, so every node is launched before any is waited for.
export KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms192m -Xmx384m}

die() {
  echo "kafka-cluster.sh: $*" >&2
  exit 1
}

((NODES >= 1)) || die "KAFKA_CLUSTER_PORTS is empty"
((${#CONTROLLER_PORTS[@]} == NODES)) ||
  die "KAFKA_CLUSTER_CONTROLLER_PORTS has ${#CONTROLLER_PORTS[@]} ports for $NODES nodes"
((REPLICATION >= 1 && REPLICATION <= NODES)) || die "KAFKA_REPLICATION=$REPLICATION does not fit $NODES nodes"

voters() {
  local i list=()
  for ((i = 0; i < NODES; i++)); do list+=("$((i + 1))@127.0.0.1:${CONTROLLER_PORTS[i]}"); done
  (IFS=,; echo "${list[*]}")
}

# node I ACTION: kafka.sh for node I (0-based).
node() {
  local i=$1
  shift
  KAFKA_PORT=${PORTS[i]} KAFKA_CONTROLLER_PORT=${CONTROLLER_PORTS[i]} KAFKA_NODE_ID=$((i + 1)) \
    KAFKA_QUORUM_VOTERS=$(voters) KAFKA_CLUSTER_ID=$(cluster_id) KAFKA_REPLICATION=$REPLICATION \
    KAFKA_MIN_ISR=$MIN_ISR KAFKA_LIB=$CLUSTER_DIR/lib ES_LOCAL_DIR=$CLUSTER_DIR/node-$((i + 1)) \
    bash "$ROOT/infra/local/kafka.sh" "$@"
}

cluster_id() {
  [[ -s $CLUSTER_DIR/cluster-id ]] || die "no cluster id yet (start makes one)"
  cat "$CLUSTER_DIR/cluster-id"
}

cmd_start() {
  mkdir -p "$CLUSTER_DIR"
  KAFKA_LIB=$CLUSTER_DIR/lib ES_LOCAL_DIR=$CLUSTER_DIR/fetch bash "$ROOT/infra/local/kafka.sh" fetch
  if [[ ! -s $CLUSTER_DIR/cluster-id ]]; then
    # A fresh uuid in the broker's own format (22 characters of url-safe base64).
    head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22 >"$CLUSTER_DIR/cluster-id"
  fi
  local i
  for ((i = 0; i < NODES; i++)); do node "$i" launch; done
  for ((i = 0; i < NODES; i++)); do node "$i" wait; done
}

cmd_stop() {
  local i
  # In parallel: a node's controlled shutdown waits for the others while they are still up.
  for ((i = 0; i < NODES; i++)); do [[ -d $CLUSTER_DIR/node-$((i + 1)) ]] && node "$i" stop & done
  wait
}

cmd_status() {
  local i rc=0
  [[ -s $CLUSTER_DIR/cluster-id ]] || { echo "kafka cluster: not created (${PORTS[*]})"; return 3; }
  for ((i = 0; i < NODES; i++)); do node "$i" status || rc=$?; done
  return "$rc"
}

cmd_kill() {
  local n=${1:-}
  [[ $n =~ ^[0-9]+$ ]] && ((n >= 1 && n <= NODES)) || die "usage: kafka-cluster.sh kill <1..$NODES>"
  local pid_file=$CLUSTER_DIR/node-$n/kafka/kafka.pid
  [[ -f $pid_file ]] || die "node $n was not started here"
  kill -KILL "$(<"$pid_file")"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  kill) cmd_kill "${2:-}" ;;
  *) die "usage: kafka-cluster.sh {start|stop|status|kill N}" ;;
esac
