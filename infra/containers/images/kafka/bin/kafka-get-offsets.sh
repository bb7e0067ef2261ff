#!/usr/bin/env bash
# The same script as in the official image's /opt/kafka/bin: org.apache.kafka.tools.GetOffsetShell.
exec "$(dirname "${BASH_SOURCE[0]}")/kafka-run-class.sh" org.apache.kafka.tools.GetOffsetShell "$@"
