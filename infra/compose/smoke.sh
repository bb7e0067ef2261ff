#!/usr/bin/env bash
# docker-compose.yml end to end with Debian's podman-compose (1.0.3): brings up kafka, redis and
# topics (not the monitoring profile), waits until the broker is healthy and the topics exist, runs
# the demo against those services, checks that its traffic went through them, and takes everything
# down again, on failure too (after printing the containers' state and logs).
#
#   bash infra/compose/smoke.sh [demo options]        (default: --limit 500)
#
# Environment:
#   KAFKA_IMAGE, REDIS_IMAGE   images to run instead of .env's (the local ones:
#                              eval "$(bash infra/containers/build-images.sh)"); both or neither
#   ES_COMPOSE_KAFKA_PORT      host port of the broker (27092)
#   ES_COMPOSE_REDIS_PORT      host port of Redis (27379)
#                              (below Linux's ephemeral range, 32768 up: a client socket's
#                              leftover there makes podman's port binding fail)
#   ES_COMPOSE_PROJECT         compose project name (ensemble-stream-smoke)
#   ES_COMPOSE_TIMEOUT         seconds for the broker to turn healthy and the topics to exist (120)
#
# podman-compose 1.0.3 differs from Docker Compose in ways this script allows for: .env wins over the
# shell's environment (so other images come in through an override file, the usual `-f a -f b`
# merge), profiles are unknown (so the services are named), depends_on's condition is not waited for
# and healthchecks run only when asked (no systemd timers here: `podman healthcheck run` is polled),
# a container that fails to start still leaves it exiting 0, and `down` leaves the network behind.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export ES_COMPOSE_KAFKA_PORT=${ES_COMPOSE_KAFKA_PORT:-27092}
export ES_COMPOSE_REDIS_PORT=${ES_COMPOSE_REDIS_PORT:-27379}
PROJECT=${ES_COMPOSE_PROJECT:-ensemble-stream-smoke}
TIMEOUT=${ES_COMPOSE_TIMEOUT:-120}
SERVICES=(kafka redis topics)
TOPICS=(features predictions fused-predictions labels ensemble-metrics dead-letters)
BOOTSTRAP=127.0.0.1:$ES_COMPOSE_KAFKA_PORT
DEMO_ARGS=("$@")
((${#DEMO_ARGS[@]} > 0)) || DEMO_ARGS=(--limit 500)
START=$SECONDS

die() {
  echo "smoke.sh: $*" >&2
  exit 1
}

phase() { echo "-- $* (at $((SECONDS - START)) s)"; }

for cmd in podman podman-compose node npm redis-cli; do
  command -v "$cmd" >/dev/null || die "'$cmd' is not installed (Debian: apt-get install podman-compose redis-tools)"
done
[[ $PROJECT =~ ^[a-z0-9][a-z0-9_-]*$ ]] || die "ES_COMPOSE_PROJECT may hold only lower-case letters, digits, _ and -"
[[ $TIMEOUT =~ ^[0-9]+$ ]] || die "ES_COMPOSE_TIMEOUT must be a number of seconds"
for port in "$ES_COMPOSE_KAFKA_PORT" "$ES_COMPOSE_REDIS_PORT"; do
  [[ $port =~ ^[0-9]+$ ]] && ((port > 0 && port < 65536)) || die "'$port' is not a TCP port"
done

WORK=$(mktemp -d /tmp/ensemble-stream-compose.XXXXXX)
COMPOSE_LOG=$WORK/podman-compose.log
FILES=(-f "$ROOT/docker-compose.yml")
if [[ -n ${KAFKA_IMAGE:-} || -n ${REDIS_IMAGE:-} ]]; then
  [[ -n ${KAFKA_IMAGE:-} && -n ${REDIS_IMAGE:-} ]] || die "set both KAFKA_IMAGE and REDIS_IMAGE, or neither"
  for image in "$KAFKA_IMAGE" "$REDIS_IMAGE"; do
    [[ $image != localhost/* ]] || podman image exists "$image" ||
      die "image $image is not on this machine (eval \"\$(bash infra/containers/build-images.sh)\")"
  done
  cat >"$WORK/images.yml" <<EOF
# Written by infra/compose/smoke.sh: the images to run instead of those named in .env.
services:
  kafka: {image: "$KAFKA_IMAGE"}
  topics: {image: "$KAFKA_IMAGE"}
  redis: {image: "$REDIS_IMAGE"}
EOF
  FILES+=(-f "$WORK/images.yml")
fi

# podman-compose prints every podman command it runs: kept in a log, shown when something fails.
compose() {
  echo "\$ podman-compose $*" >>"$COMPOSE_LOG"
  podman-compose -p "$PROJECT" "${FILES[@]}" "$@" >>"$COMPOSE_LOG" 2>&1
}

# Names of this project's containers: all, or the one of a service.
containers() {
  podman ps -a --filter "label=io.podman.compose.project=$PROJECT" \
    --format '{{.Names}} {{index .Labels "com.docker.compose.service"}}' |
    awk -v service="${1:-}" 'service == "" || $2 == service {print $1}'
}

state() { podman inspect --format '{{.State.Status}}' "$1" 2>/dev/null || echo missing; }

show_failure() {
  local name
  {
    echo "--- containers of compose project $PROJECT"
    podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}  {{.Status}}  {{.Image}}'
    for name in $(containers); do
      echo "--- last lines of the log of $name"
      podman logs --tail 40 "$name" 2>&1
    done
    echo "--- last lines of podman-compose's output ($COMPOSE_LOG)"
    tail -n 30 "$COMPOSE_LOG"
    echo "--- the demo's services log to $ROOT/.local/logs/"
  } >&2
}

take_down() {
  compose down || echo "smoke.sh: podman-compose down failed (see above)" >&2
  # podman-compose 1.0.3 does not remove the network it created.
  podman network rm -f "${PROJECT}_default" >/dev/null 2>&1 || true
}

finish() {
  local status=$? left
  trap - EXIT
  ((status == 0)) || show_failure
  phase "down"
  take_down
  left=$(containers)
  if [[ -n $left ]]; then
    echo "smoke.sh: containers of $PROJECT are left after down: $left" >&2
    status=1
  fi
  rm -rf "$WORK"
  echo "-- compose smoke test $( ((status == 0)) && echo passed || echo FAILED) in $((SECONDS - START)) s"
  exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

# A port some socket on this machine holds as its own (listening, connected or in TIME-WAIT): podman
# cannot publish it then.
port_taken() {
  if command -v ss >/dev/null; then
    [[ -n $(ss -Htan "( sport = :$1 )") ]]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

# until_ok WHAT COMMAND...: runs COMMAND every second until it succeeds; fails after $TIMEOUT s or
# as soon as one of this project's long-running containers is no longer running.
until_ok() {
  local what=$1 deadline=$((SECONDS + TIMEOUT)) name
  shift
  until "$@" >/dev/null 2>&1; do
    for name in $(containers kafka) $(containers redis); do
      [[ $(state "$name") == running ]] || die "$name is $(state "$name") while waiting for $what"
    done
    ((SECONDS < deadline)) || die "no $what within $TIMEOUT s; the last try said: $("$@" 2>&1 | tail -n 3)"
    sleep 1
  done
}

# Through the published port, as the demo connects.
redis_ping() { timeout 5 redis-cli -h 127.0.0.1 -p "$ES_COMPOSE_REDIS_PORT" ping 2>&1; }
redis_answers() {
  local answer
  answer=$(redis_ping) || true
  [[ $answer == PONG ]] || { echo "$answer"; return 1; }
}

topics_done() { [[ $(state "$TOPICS_CONTAINER") == exited ]]; }

in_kafka() { podman exec "$KAFKA" "$@"; }

phase "compose up: ${SERVICES[*]} (project $PROJECT; Kafka on $BOOTSTRAP, Redis on 127.0.0.1:$ES_COMPOSE_REDIS_PORT)"
# A run that was killed can leave its containers; they would hold the names and the ports.
take_down
for port in "$ES_COMPOSE_KAFKA_PORT" "$ES_COMPOSE_REDIS_PORT"; do
  ! port_taken "$port" || die "port $port is held by a socket on this machine (choose ES_COMPOSE_KAFKA_PORT / ES_COMPOSE_REDIS_PORT):"$'\n'"$(ss -tanp "( sport = :$port )" 2>&1)"
done
compose up -d "${SERVICES[@]}" || die "podman-compose up failed"
KAFKA=$(containers kafka)
REDIS=$(containers redis)
TOPICS_CONTAINER=$(containers topics)
for service in "${SERVICES[@]}"; do
  [[ -n $(containers "$service") ]] || die "podman-compose created no container for service $service"
done
for name in "$KAFKA" "$REDIS"; do
  [[ $(state "$name") == running ]] || die "$name is $(state "$name"), not running"
done
podman ps --filter "label=io.podman.compose.project=$PROJECT" --format '   {{.Names}}  {{.Image}}  {{.Ports}}'

phase "waiting for the broker's healthcheck and for Redis"
until_ok "healthy broker (the compose healthcheck, kafka-broker-api-versions.sh)" podman healthcheck run "$KAFKA"
until_ok "PONG from Redis on 127.0.0.1:$ES_COMPOSE_REDIS_PORT" redis_answers
echo "   $KAFKA: $(podman inspect --format '{{.State.Health.Status}}' "$KAFKA"); $REDIS: PONG on 127.0.0.1:$ES_COMPOSE_REDIS_PORT"

phase "waiting for the topics service"
until_ok "end of the topics service" topics_done
code=$(podman inspect --format '{{.State.ExitCode}}' "$TOPICS_CONTAINER")
((code == 0)) || die "the topics service exited with $code"
described=$(in_kafka /opt/kafka/bin/kafka-topics.sh --bootstrap-server "$BOOTSTRAP" --describe)
for topic in "${TOPICS[@]}"; do
  grep -qE "^Topic: $topic[[:space:]].*PartitionCount: 3" <<<"$described" ||
    die "topic $topic with 3 partitions is missing on the compose broker:"$'\n'"$described"
done
echo "   created: ${TOPICS[*]} (3 partitions each)"

phase "demo on the compose services: npm run demo -- ${DEMO_ARGS[*]}"
# Local infra would live under this folder: it must stay empty (compose's services answer).
LOCAL_DIR=$WORK/local
(cd "$ROOT" && KAFKA_BROKERS=$BOOTSTRAP REDIS_URL=redis://127.0.0.1:$ES_COMPOSE_REDIS_PORT ES_LOCAL_DIR=$LOCAL_DIR \
  npm run --silent demo -- "${DEMO_ARGS[@]}") | tee "$WORK/demo.out"

phase "checking that the demo ran on the compose services"
[[ ! -e $LOCAL_DIR/kafka && ! -e $LOCAL_DIR/redis ]] || die "the demo started a local Kafka or Redis"
summary=$(grep -E '^requests sent [0-9]+, fused [0-9]+ ' "$WORK/demo.out") || die "the demo printed no 'requests sent' line"
[[ $summary =~ ^requests\ sent\ ([0-9]+),\ fused\ ([0-9]+)\ \(all\) ]] || die "the demo did not fuse every request: $summary"
sent=${BASH_REMATCH[1]}
fused=${BASH_REMATCH[2]}
((sent > 0 && fused == sent)) || die "sent $sent, fused $fused"
# Fused results are written in transactions: the end offsets count the records and the commit markers.
end_offsets=$(in_kafka /opt/kafka/bin/kafka-get-offsets.sh --bootstrap-server "$BOOTSTRAP" --topic fused-predictions |
  awk -F: '{sum += $3} END {print sum + 0}')
((end_offsets >= fused)) || die "the compose broker's fused-predictions topic ends at $end_offsets in all, below the $fused results"
groups=$(in_kafka /opt/kafka/bin/kafka-consumer-groups.sh --bootstrap-server "$BOOTSTRAP" --list)
grep -qx 'ensemble-stream.aggregator' <<<"$groups" || die "the aggregator's group is not on the compose broker:"$'\n'"$groups"
keys=$(podman exec "$REDIS" redis-cli dbsize)
((keys > 0)) || die "the compose Redis holds no keys after the demo"
echo "   sent $sent, fused $fused; compose broker: fused-predictions end offsets $end_offsets in all," \
  "$(grep -c . <<<"$groups") consumer groups; compose Redis: $keys keys"
