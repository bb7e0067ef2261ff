#!/usr/bin/env bash
# kafka-run-class.sh CLASS [ARGS...]: runs one of Kafka's command-line tools on the image's classpath,
# the way the official image's bin/ scripts do (the tool scripts next to this one call it). Small
# heap, quick start, warnings and errors only on stderr.
set -euo pipefail
(($# > 0)) || { echo "usage: kafka-run-class.sh CLASS [ARGS...]" >&2; exit 2; }
exec java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true \
  -Dlog4j2.configurationFile=/etc/kafka/docker/tools-log4j2.yaml \
  -cp '/opt/kafka/libs/*' "$@"
