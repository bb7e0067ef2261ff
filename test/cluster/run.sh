#!/usr/bin/env bash
# The cluster suites (vitest project `cluster`) on local processes: a 3-broker KRaft cluster and a
# 3-master Redis Cluster with a replica each (`infra up --brokers 3 --redis-cluster`), a single broker
# with a SCRAM listener and a Redis whose only user is an ACL user. Everything is started here and
# stopped on exit; if anything cannot start, the run fails with its logs. Extra arguments go to vitest
# (for example a file name).
#
# Ports (defaults are off the usual ones so a developer's Kafka and Redis keep running):
# ES_CLUSTER_KAFKA_PORTS (19092,19093,19094), ES_CLUSTER_CONTROLLER_PORTS (19192,19193,19194),
# ES_CLUSTER_REDIS_PORTS (17001,...,17006), ES_SCRAM_KAFKA_PORT (19292, controller +1),
# ES_ACL_REDIS_PORT (16390); state under ES_LOCAL_DIR (<repo>/.local/cluster-suites); KAFKA_START_TIMEOUT
# (240 s) for each broker to answer.
# ES_KEEP_CLUSTER=1 leaves everything running.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD

KAFKA_PORTS=${ES_CLUSTER_KAFKA_PORTS:-19092,19093,19094}
export KAFKA_CLUSTER_CONTROLLER_PORTS=${ES_CLUSTER_CONTROLLER_PORTS:-19192,19193,19194}
export REDIS_CLUSTER_PORTS=${ES_CLUSTER_REDIS_PORTS:-17001,17002,17003,17004,17005,17006}
SCRAM_PORT=${ES_SCRAM_KAFKA_PORT:-19292}
ACL_PORT=${ES_ACL_REDIS_PORT:-16390}
export ES_LOCAL_DIR=${ES_LOCAL_DIR:-$ROOT/.local/cluster-suites}
# Three JVMs forming a quorum on a busy 2-core machine can take minutes: wait that long, then fail.
export KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-240}
mkdir -p "$ES_LOCAL_DIR"

export KAFKA_BROKERS=127.0.0.1:${KAFKA_PORTS//,/,127.0.0.1:}
IFS=, read -ra redis_ports <<<"$REDIS_CLUSTER_PORTS"
export REDIS_URL=redis://127.0.0.1:${redis_ports[0]},127.0.0.1:${redis_ports[1]},127.0.0.1:${redis_ports[2]}

# Fresh secrets per run: the suites grep every log line for them.
secret() { head -c 18 /dev/urandom | base64 | tr -d '+/=' ; }
export ES_TEST_SCRAM_USER=es-scram-user ES_TEST_SCRAM_PASSWORD=scram-$(secret)
export ES_TEST_ACL_USER=es-acl-user ES_TEST_ACL_PASSWORD=acl-$(secret)
export ES_TEST_SCRAM_BROKERS=127.0.0.1:$SCRAM_PORT
export ES_TEST_ACL_REDIS_URL=redis://127.0.0.1:$ACL_PORT

scram_kafka() {
  KAFKA_PORT=$SCRAM_PORT KAFKA_CONTROLLER_PORT=$((SCRAM_PORT + 1)) ES_LOCAL_DIR=$ES_LOCAL_DIR/scram \
    KAFKA_SCRAM_USER=$ES_TEST_SCRAM_USER KAFKA_SCRAM_PASSWORD=$ES_TEST_SCRAM_PASSWORD bash infra/local/kafka.sh "$@"
}

cleanup() {
  [[ ${ES_KEEP_CLUSTER:-} == 1 ]] && { echo "cluster suites: left running (ES_KEEP_CLUSTER=1)"; return; }
  node dist/services/cli/main.js infra down --brokers 3 --redis-cluster >/dev/null 2>&1 || true
  scram_kafka stop >/dev/null 2>&1 || true
  redis-cli -p "$ACL_PORT" --user "$ES_TEST_ACL_USER" --pass "$ES_TEST_ACL_PASSWORD" --no-auth-warning shutdown nosave >/dev/null 2>&1 || true
}
trap cleanup EXIT

npm run -s build
started=$(date +%s%N)
# A SCRAM user exists only in the storage it was formatted with: a new password needs fresh storage.
rm -rf "$ES_LOCAL_DIR/scram/kafka/data"
LOG_LEVEL=warn node dist/services/cli/main.js infra up --brokers 3 --redis-cluster
clusters_ms=$((($(date +%s%N) - started) / 1000000))
scram_kafka start
# The default user is off: only the ACL user, with its password, may do anything.
redis-server --bind 127.0.0.1 --port "$ACL_PORT" --save '' --appendonly no --daemonize yes --dir "$ES_LOCAL_DIR" \
  --logfile "$ES_LOCAL_DIR/acl-redis.log" --user default off \
  --user "$ES_TEST_ACL_USER" on ">$ES_TEST_ACL_PASSWORD" '~*' '&*' '+@all' >/dev/null
for _ in $(seq 50); do
  redis-cli -p "$ACL_PORT" --user "$ES_TEST_ACL_USER" --pass "$ES_TEST_ACL_PASSWORD" --no-auth-warning ping 2>/dev/null | grep -q PONG && break
  sleep 0.1
done
echo "cluster suites: 3 brokers and the Redis Cluster up in ${clusters_ms} ms; everything up in $((($(date +%s%N) - started) / 1000000)) ms"

ES_CLUSTER_SUITES=1 npx vitest run --project cluster "$@"
