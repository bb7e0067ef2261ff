#!/usr/bin/env bash
# A local single-node Apache Kafka (KRaft, broker and controller in one JVM) without Docker: the jars
# come from Maven Central (infra/kafka/pom.xml), versions from infra/versions.env, state lives under
# $ES_LOCAL_DIR/kafka.
#
#   kafka.sh fetch [--tools]   resolve the broker classpath into lib/, with the tools jar (java -cp
#                              '<dir>/lib/*' org.apache.kafka.tools.TopicCommand ...); --tools: also
#                              tools-lib/, the tools with all their dependencies (the perf tools)
#   kafka.sh start             fetch, configure, format once, start and wait until a metadata request
#                              answers; reuses a broker already answering on the port
#   kafka.sh stop              stop the broker this script started (and nothing else)
#   kafka.sh status            one line; exit 0 when a broker answers, 3 when stopped, 1 otherwise
#   kafka.sh launch            as start, without waiting (a node of a quorum that is not up yet)
#   kafka.sh wait              wait until the broker answers
#
# Environment: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), ES_LOCAL_DIR (<repo>/.local),
# KAFKA_HEAP_OPTS (-Xms256m -Xmx512m), KAFKA_START_TIMEOUT (60 s), KAFKA_STOP_TIMEOUT (30 s).
# One node of several (kafka-cluster.sh sets these): KAFKA_NODE_ID (1), KAFKA_QUORUM_VOTERS
# (id@host:port,...; empty: a standalone quorum), KAFKA_CLUSTER_ID (the same on every node),
# KAFKA_REPLICATION (1: internal topics' and the default replication factor), KAFKA_MIN_ISR (1),
# KAFKA_LIB (a shared classpath folder). SCRAM: KAFKA_SCRAM_USER with KAFKA_SCRAM_PASSWORD or
# KAFKA_SCRAM_PASSWORD_FILE makes the client port a SASL_PLAINTEXT listener (SCRAM-SHA-256 and -512)
# whose one user is created at format time; brokers talk to each other with that user too.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../versions.env
source "$ROOT/infra/versions.env"

KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-60}
KAFKA_STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}
LOCAL_DIR=$(realpath -m "${ES_LOCAL_DIR:-$ROOT/.local}")

POM=$ROOT/infra/kafka/pom.xml
LOG4J_CONFIG=$ROOT/infra/kafka/log4j2.yaml
TEMPLATE=$ROOT/infra/kafka/server.properties.template
KAFKA_DIR=$LOCAL_DIR/kafka
LIB=${KAFKA_LIB:-$KAFKA_DIR/lib}
KAFKA_NODE_ID=${KAFKA_NODE_ID:-1}
KAFKA_QUORUM_VOTERS=${KAFKA_QUORUM_VOTERS:-}
KAFKA_CLUSTER_ID=${KAFKA_CLUSTER_ID:-}
KAFKA_REPLICATION=${KAFKA_REPLICATION:-1}
KAFKA_MIN_ISR=${KAFKA_MIN_ISR:-1}
KAFKA_SCRAM_USER=${KAFKA_SCRAM_USER:-}
if [[ -n ${KAFKA_SCRAM_PASSWORD_FILE:-} ]]; then KAFKA_SCRAM_PASSWORD=$(<"$KAFKA_SCRAM_PASSWORD_FILE"); fi
KAFKA_SCRAM_PASSWORD=${KAFKA_SCRAM_PASSWORD:-}
export KAFKA_SCRAM_USER KAFKA_SCRAM_PASSWORD
TOOLS_LIB=$KAFKA_DIR/tools-lib
PROPS=$KAFKA_DIR/server.properties
DATA_DIR=$KAFKA_DIR/data
LOG_DIR=$KAFKA_DIR/logs
CONSOLE_LOG=$LOG_DIR/console.log
PID_FILE=$KAFKA_DIR/kafka.pid
BOOTSTRAP=127.0.0.1:$KAFKA_PORT

die() {
  echo "kafka.sh: $*" >&2
  exit 1
}

need() {
  local cmd
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null || die "'$cmd' is not installed"
  done
}

check_port() {
  [[ $2 =~ ^[0-9]+$ ]] && (($2 > 0 && $2 < 65536)) || die "$1 must be a TCP port, got '$2'"
}

# Serialises start/stop/fetch of one $ES_LOCAL_DIR (parallel test runners may call start together).
lock() {
  need flock
  mkdir -p "$KAFKA_DIR"
  exec 9>"$KAFKA_DIR/.lock"
  flock 9
}

# ---------------------------------------------------------------------------------------------- fetch

stamp_of() {
  printf 'kafka=%s scala=%s log4j=%s profile=%s pom=%s\n' "$KAFKA_VERSION" "$SCALA_VERSION" \
    "$LOG4J_VERSION" "$1" "$(sha256sum <"$POM" | cut -d' ' -f1)"
}

# fetch_into DIR PROFILE: copies the runtime classpath of the pom (with PROFILE, or "default") into
# DIR, unless DIR's stamp says these exact versions are already there. Replaces DIR atomically.
fetch_into() {
  local dir=$1 profile=$2 stamp partial=$1.partial
  stamp=$(stamp_of "$profile")
  [[ -f $dir/.stamp && $(<"$dir/.stamp") == "$stamp" ]] && return 0
  need mvn java
  local profile_args=()
  [[ $profile == default ]] || profile_args=(-P "$profile")
  rm -rf "$partial"
  mkdir -p "$LOG_DIR"
  if ! mvn -q -B -f "$POM" "${profile_args[@]}" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$partial" \
    -Dkafka.version="$KAFKA_VERSION" -Dscala.version="$SCALA_VERSION" \
    -Dlog4j.version="$LOG4J_VERSION" >"$LOG_DIR/fetch.log" 2>&1; then
    sed 's/\x1b\[[0-9;]*m//g' "$LOG_DIR/fetch.log" | tail -n 40 >&2
    rm -rf "$partial"
    die "fetching Kafka $KAFKA_VERSION ($profile) with Maven failed; full output in $LOG_DIR/fetch.log"
  fi
  echo "$stamp" >"$partial/.stamp"
  rm -rf "$dir"
  mv "$partial" "$dir"
}

cmd_fetch() {
  local tools=false
  case "${1:-}" in
    '') ;;
    --tools) tools=true ;;
    *) die "usage: kafka.sh fetch [--tools]" ;;
  esac
  lock
  fetch_into "$LIB" default
  if $tools; then fetch_into "$TOOLS_LIB" tools; fi
}

# ---------------------------------------------------------------------------------------------- probes

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A metadata request through kafkajs (the client the services use) that lists at least one broker:
# an open port alone is not a ready broker.
PROBE_JS='
const { Kafka, logLevel } = require("kafkajs");
const user = process.env.KAFKA_SCRAM_USER;
const sasl = user ? { mechanism: "scram-sha-256", username: user, password: process.env.KAFKA_SCRAM_PASSWORD } : undefined;
const admin = new Kafka({
  clientId: "kafka-sh-probe", brokers: [process.argv[1]], logLevel: logLevel.NOTHING,
  connectionTimeout: 5000, requestTimeout: 10000, retry: { retries: 0 }, sasl,
}).admin();
admin.connect().then(() => admin.describeCluster()).then(
  (cluster) => process.exit(cluster.brokers.length > 0 ? 0 : 1),
  () => process.exit(1));
'

need_probe() {
  need node timeout
  [[ -d $ROOT/node_modules/kafkajs ]] || die "kafkajs is missing (the readiness check uses it): run npm install"
}

answers() {
  port_open "$KAFKA_PORT" || return 1
  (cd "$ROOT" && timeout 30 node -e "$PROBE_JS" "$BOOTSTRAP") >/dev/null 2>&1
}

# Prints the pid of the broker this script started for $ES_LOCAL_DIR, if it is still running (the
# command line is checked so that a recycled pid is never taken for ours).
our_pid() {
  [[ -f $PID_FILE ]] || return 1
  local pid
  pid=$(<"$PID_FILE")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF "kafka.Kafka $PROPS " || return 1
  echo "$pid"
}

show_logs() {
  local file
  for file in "$CONSOLE_LOG" "$LOG_DIR/server.log"; do
    [[ -s $file ]] || continue
    echo "--- last lines of $file" >&2
    tail -n 25 "$file" >&2
  done
}

# ---------------------------------------------------------------------------------------------- start

render_config() {
  local esc_dir=${DATA_DIR//\\/\\\\}
  esc_dir=${esc_dir//&/\\&}
  esc_dir=${esc_dir//|/\\|}
  sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
    -e "s|@KAFKA_CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
    -e "s|@KAFKA_LOG_DIRS@|$esc_dir|g" "$TEMPLATE" >"$PROPS.tmp"
  # Later keys win in a properties file: one node of several, and SCRAM, override the template.
  if [[ -n $KAFKA_QUORUM_VOTERS || $KAFKA_REPLICATION != 1 || $KAFKA_MIN_ISR != 1 ]]; then
    cat >>"$PROPS.tmp" <<EOF2

# One node of a cluster (kafka.sh with KAFKA_NODE_ID, KAFKA_QUORUM_VOTERS, KAFKA_REPLICATION).
node.id=$KAFKA_NODE_ID
controller.quorum.bootstrap.servers=
controller.quorum.voters=$KAFKA_QUORUM_VOTERS
default.replication.factor=$KAFKA_REPLICATION
min.insync.replicas=$KAFKA_MIN_ISR
offsets.topic.replication.factor=$KAFKA_REPLICATION
transaction.state.log.replication.factor=$KAFKA_REPLICATION
transaction.state.log.min.isr=$KAFKA_MIN_ISR
share.coordinator.state.topic.replication.factor=$KAFKA_REPLICATION
share.coordinator.state.topic.min.isr=$KAFKA_MIN_ISR
# A dead broker is noticed by the controller after this (default 9 s), and its partitions' leaders
# move: the larger part of a client's failover gap.
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=500
EOF2
  fi
  if [[ -n $KAFKA_SCRAM_USER ]]; then
    [[ -n $KAFKA_SCRAM_PASSWORD ]] || die "KAFKA_SCRAM_USER is set without KAFKA_SCRAM_PASSWORD or KAFKA_SCRAM_PASSWORD_FILE"
    [[ $KAFKA_SCRAM_USER =~ ^[A-Za-z0-9_.-]+$ && $KAFKA_SCRAM_PASSWORD =~ ^[A-Za-z0-9_.+/=-]+$ ]] ||
      die "KAFKA_SCRAM_USER and KAFKA_SCRAM_PASSWORD may hold only letters, digits and _ . + / = -"
    cat >>"$PROPS.tmp" <<EOF2

# SCRAM on the client port (kafka.sh with KAFKA_SCRAM_USER); the user is created at format time.
listeners=SASL_PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=SASL_PLAINTEXT://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=SASL_PLAINTEXT
listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-256
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$KAFKA_SCRAM_USER" password="$KAFKA_SCRAM_PASSWORD";
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$KAFKA_SCRAM_USER" password="$KAFKA_SCRAM_PASSWORD";
EOF2
    chmod 600 "$PROPS.tmp"
  fi
  mv "$PROPS.tmp" "$PROPS"
}

java_run() {
  java -Dlog4j2.configurationFile="$LOG4J_CONFIG" -Dkafka.logs.dir="$LOG_DIR" -cp "$LIB/*" "$@"
}

# Formats the log dir as a standalone KRaft quorum, once: a formatted dir keeps its cluster id.
format_once() {
  [[ -f $DATA_DIR/meta.properties ]] && return 0
  if [[ -d $DATA_DIR && -n $(ls -A "$DATA_DIR") ]]; then
    die "$DATA_DIR holds files but no meta.properties; remove the folder to start afresh"
  fi
  local cluster_id=$KAFKA_CLUSTER_ID quorum=(--standalone) scram=()
  [[ -n $cluster_id ]] || cluster_id=$(java_run kafka.tools.StorageTool random-uuid 2>>"$CONSOLE_LOG" | tail -n 1)
  [[ $cluster_id =~ ^[A-Za-z0-9_-]{22}$ ]] || die "the cluster id is '$cluster_id', not a KRaft uuid"
  [[ -n $KAFKA_QUORUM_VOTERS ]] && quorum=()
  if [[ -n $KAFKA_SCRAM_USER ]]; then
    scram=(--add-scram "SCRAM-SHA-256=[name=$KAFKA_SCRAM_USER,password=$KAFKA_SCRAM_PASSWORD]"
      --add-scram "SCRAM-SHA-512=[name=$KAFKA_SCRAM_USER,password=$KAFKA_SCRAM_PASSWORD]")
  fi
  if ! java_run kafka.tools.StorageTool format "${quorum[@]}" "${scram[@]}" -t "$cluster_id" -c "$PROPS" \
    >>"$CONSOLE_LOG" 2>&1; then
    show_logs
    die "formatting $DATA_DIR failed"
  fi
}

launch() {
  local heap
  read -ra heap <<<"$KAFKA_HEAP_OPTS"
  # setsid: the broker must not die with the shell or process group that started it. fd 9 (the lock)
  # is closed so that the broker does not hold it.
  setsid java "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$LOG4J_CONFIG" -Dkafka.logs.dir="$LOG_DIR" \
    -cp "$LIB/*" kafka.Kafka "$PROPS" >>"$CONSOLE_LOG" 2>&1 </dev/null 9>&- &
  echo $! >"$PID_FILE"
}

# wait_ready PID: until the broker answers; on timeout or exit, shows the logs and fails.
wait_ready() {
  local pid=$1 deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  until answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      show_logs
      die "the broker (pid $pid) exited during startup"
    fi
    if ((SECONDS >= deadline)); then
      show_logs
      die "the broker (pid $pid) did not answer on $BOOTSTRAP within ${KAFKA_START_TIMEOUT}s"
    fi
    sleep 0.5
  done
}

cmd_start() {
  local wait=${1:-wait}
  need java setsid
  need_probe
  check_port KAFKA_PORT "$KAFKA_PORT"
  check_port KAFKA_CONTROLLER_PORT "$KAFKA_CONTROLLER_PORT"
  lock
  local pid
  if pid=$(our_pid); then
    [[ $wait == wait ]] && wait_ready "$pid"
    return 0
  fi
  rm -f "$PID_FILE"
  if answers; then
    echo "kafka.sh: a broker not started by this script answers on $BOOTSTRAP; using it" >&2
    return 0
  fi
  port_open "$KAFKA_PORT" && die "127.0.0.1:$KAFKA_PORT is taken by something that is not a Kafka broker"
  port_open "$KAFKA_CONTROLLER_PORT" && die "controller port 127.0.0.1:$KAFKA_CONTROLLER_PORT is taken"

  fetch_into "$LIB" default
  mkdir -p "$LOG_DIR"
  render_config
  format_once
  launch
  pid=$(<"$PID_FILE")
  [[ $wait == wait ]] || return 0
  if ! (wait_ready "$pid"); then
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$PID_FILE"
    exit 1
  fi
}

# ---------------------------------------------------------------------------------------------- stop

cmd_stop() {
  lock
  local pid
  if ! pid=$(our_pid); then
    rm -f "$PID_FILE"
    if answers; then echo "kafka.sh: the broker on $BOOTSTRAP was not started by this script; left running" >&2; fi
    return 0
  fi
  # SIGTERM runs the broker's controlled shutdown, which flushes and closes the logs cleanly.
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      echo "kafka.sh: the broker (pid $pid) ignored SIGTERM for ${KAFKA_STOP_TIMEOUT}s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$PID_FILE"
}

# ---------------------------------------------------------------------------------------------- status

cmd_status() {
  need_probe
  local pid
  if pid=$(our_pid); then
    if answers; then
      echo "kafka: running, pid $pid, on $BOOTSTRAP"
      return 0
    fi
    echo "kafka: pid $pid is running but $BOOTSTRAP does not answer (starting, or unhealthy: see $LOG_DIR)"
    return 1
  fi
  if answers; then
    echo "kafka: a broker not started by kafka.sh answers on $BOOTSTRAP"
    return 0
  fi
  echo "kafka: stopped ($BOOTSTRAP)"
  return 3
}

case "${1:-}" in
  fetch) shift; cmd_fetch "$@" ;;
  start) cmd_start ;;
  launch) cmd_start no-wait ;;
  wait)
    need_probe
    pid=$(our_pid) || die "no broker started by kafka.sh for $KAFKA_DIR"
    wait_ready "$pid"
    ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) die "usage: kafka.sh {fetch [--tools]|start|launch|wait|stop|status}" ;;
esac
