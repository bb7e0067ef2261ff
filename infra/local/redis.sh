#!/usr/bin/env bash
# Redis for development and tests. A server that already answers PING on $REDIS_URL is reused (and
# never stopped by this script); otherwise a local redis-server without persistence is started, with
# its pid file and log under $ES_LOCAL_DIR/redis.
#
#   redis.sh start    reuse or start, then wait until PING answers
#   redis.sh stop     stop the server this script started (and nothing else)
#   redis.sh status   one line; exit 0 when PING answers, 3 when nothing answers
#
# Environment: REDIS_URL (redis://127.0.0.1:6379), ES_LOCAL_DIR (<repo>/.local).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
LOCAL_DIR=$(realpath -m "${ES_LOCAL_DIR:-$ROOT/.local}")
REDIS_DIR=$LOCAL_DIR/redis
PID_FILE=$REDIS_DIR/redis.pid
LOG_FILE=$REDIS_DIR/redis.log
# Written when start found a server it did not start: stop must leave that one alone.
REUSED_FILE=$REDIS_DIR/reused
START_TIMEOUT=10
STOP_TIMEOUT=10

die() {
  echo "redis.sh: $*" >&2
  exit 1
}

command -v redis-cli >/dev/null || die "'redis-cli' is not installed (Debian: apt-get install redis-tools)"

# redis[s]://[user:password@]host[:port][/db]
[[ $REDIS_URL =~ ^(rediss?)://([^@/]*@)?([^:/@]+)(:([0-9]+))?(/[0-9]*)?$ ]] ||
  die "REDIS_URL must look like redis://[user:password@]host[:port][/db], got '$REDIS_URL'"
SCHEME=${BASH_REMATCH[1]}
CREDENTIALS=${BASH_REMATCH[2]}
HOST=${BASH_REMATCH[3]}
PORT=${BASH_REMATCH[5]:-6379}

answers() {
  [[ $(timeout 5 redis-cli -u "$REDIS_URL" ping 2>/dev/null) == PONG ]]
}

# Prints the pid of the server this script started, if it still runs on our port (checked on its
# command line, which redis-server sets to "redis-server host:port", so a recycled pid never counts).
our_pid() {
  [[ -f $PID_FILE ]] || return 1
  local pid
  pid=$(<"$PID_FILE")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qE "^redis-server .*:$PORT( |$)" || return 1
  echo "$pid"
}

cmd_start() {
  mkdir -p "$REDIS_DIR"
  if our_pid >/dev/null && answers; then return 0; fi
  rm -f "$PID_FILE"
  if answers; then
    echo "$REDIS_URL" >"$REUSED_FILE"
    return 0
  fi
  rm -f "$REUSED_FILE"
  [[ $HOST == 127.0.0.1 || $HOST == localhost ]] ||
    die "nothing answers on $REDIS_URL, and a server is only started here for 127.0.0.1 or localhost"
  [[ $SCHEME == redis && -z $CREDENTIALS ]] ||
    die "nothing answers on $REDIS_URL; a server with TLS or a password is not started here"
  command -v redis-server >/dev/null || die "'redis-server' is not installed (Debian: apt-get install redis-server)"
  local bind=("$HOST")
  # localhost may resolve to either loopback; "-::1" lets the server start where IPv6 is missing.
  [[ $HOST == localhost ]] && bind=(127.0.0.1 -::1)
  # Development data only: no snapshots, no append-only file.
  if ! redis-server --bind "${bind[@]}" --port "$PORT" --save '' --appendonly no --daemonize yes \
    --pidfile "$PID_FILE" --logfile "$LOG_FILE" --dir "$REDIS_DIR" >/dev/null; then
    die "redis-server did not start; see $LOG_FILE"
  fi
  local deadline=$((SECONDS + START_TIMEOUT))
  until answers; do
    if ((SECONDS >= deadline)); then
      tail -n 20 "$LOG_FILE" >&2 2>/dev/null || true
      die "redis-server did not answer PING on $REDIS_URL within ${START_TIMEOUT}s"
    fi
    sleep 0.1
  done
}

cmd_stop() {
  local pid
  if ! pid=$(our_pid); then
    rm -f "$PID_FILE" "$REUSED_FILE"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      echo "redis.sh: redis-server (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT}s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  rm -f "$PID_FILE"
}

cmd_status() {
  local pid
  if pid=$(our_pid) && answers; then
    echo "redis: running, pid $pid, on $REDIS_URL"
  elif answers; then
    echo "redis: a server not started by redis.sh answers on $REDIS_URL"
  else
    echo "redis: nothing answers on $REDIS_URL"
    return 3
  fi
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) die "usage: redis.sh {start|stop|status}" ;;
esac
