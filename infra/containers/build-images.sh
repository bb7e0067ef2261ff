#!/usr/bin/env bash
# Builds the test images locally, with no container registry: a Debian base made by debootstrap from
# the machine's own Debian mirror, then Redis and Kafka on top of it. Each image carries a hash of its
# inputs in a label; an image whose hash matches is kept, so a second run takes seconds.
#
# Prints the overrides that select these images: eval "$(bash infra/containers/build-images.sh)"
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
IMAGES_DIR=$ROOT/infra/containers/images
HASH_LABEL=org.ensemble-stream.inputs-hash
SOURCES_FILE=/etc/apt/sources.list.d/debian.sources
SUITE=bookworm
BASE_IMAGE=localhost/ensemble-stream-base:$SUITE
# Where infra/local/kafka.sh fetch puts the broker classpath.
KAFKA_LIB_DIR=${ES_LOCAL_DIR:-$ROOT/.local}/kafka/lib

die() { echo "build-images.sh: $*" >&2; exit 1; }

command -v podman >/dev/null || die "podman is missing: run 'bash infra/containers/engine.sh up' first"
[[ -f $ROOT/infra/versions.env ]] || die "infra/versions.env is missing"
# shellcheck source-path=SCRIPTDIR/..
# shellcheck source=versions.env
source "$ROOT/infra/versions.env"
[[ -n ${KAFKA_VERSION:-} ]] || die "KAFKA_VERSION is not set in infra/versions.env"

WORK=$(mktemp -d /var/tmp/ensemble-stream-images.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# Runs a command with its output kept in a log that is shown only when it fails.
quietly() {
  local log=$WORK/step.log
  if ! "$@" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "failed: $*"
  fi
}

image_hash() {
  podman image inspect --format "{{index .Labels \"$HASH_LABEL\"}}" "$1" 2>/dev/null || true
}

image_id() {
  podman image inspect --format '{{.Id}}' "$1"
}

# Hash of the given strings and of every file under the given paths (names and contents).
inputs_hash() {
  local item
  for item in "$@"; do
    if [[ -e $item ]]; then
      (cd "$item" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    else
      printf '%s\n' "$item"
    fi
  done | sha256sum | cut -c1-16
}

# Versions of the Debian packages the images install, as the machine's mirror serves them now, so an
# image's tag says what is inside it and a mirror update leads to a rebuild. One apt-cache call: each
# one costs about a second.
declare -A DEB_VERSION
read_deb_versions() {
  local policy package
  policy=$(apt-cache policy "$@" 2>/dev/null)
  if [[ $(grep -c 'Candidate: [^(]' <<<"$policy") -ne $# ]]; then
    quietly apt-get -o DPkg::Lock::Timeout=120 update -qq
    policy=$(apt-cache policy "$@")
  fi
  while read -r package version; do
    DEB_VERSION[$package]=$version
  done < <(awk '/^[^ ]/ {sub(":$", "", $1); p = $1} /Candidate:/ {print p, $2}' <<<"$policy")
  for package in "$@"; do
    [[ ${DEB_VERSION[$package]:-(none)} != "(none)" ]] || die "no Debian package $package on this machine's mirror"
  done
}

mirror_uri() {
  [[ -f $SOURCES_FILE ]] || die "$SOURCES_FILE is missing: cannot find the Debian mirror"
  awk '/^URIs:/ {print $2; exit}' "$SOURCES_FILE"
}

build_base() {
  local inputs mirror rootfs
  mirror=$(mirror_uri)
  inputs=$(inputs_hash "$SUITE" "$mirror" "$(<"$SOURCES_FILE")" "$(declare -f build_base)")
  [[ $(image_hash "$BASE_IMAGE") == "$inputs" ]] && return 0
  if ! command -v debootstrap >/dev/null; then
    quietly env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -qq debootstrap
  fi
  rootfs=$WORK/rootfs
  quietly debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror"
  # The image uses the same mirror entries (main, updates, security) as this machine.
  rm -f "$rootfs/etc/apt/sources.list"
  cp "$SOURCES_FILE" "$rootfs/etc/apt/sources.list.d/"
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
    >"$rootfs/etc/apt/apt.conf.d/90no-recommends"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | quietly podman import \
    --change 'CMD ["/bin/bash"]' --change "LABEL $HASH_LABEL=$inputs" - "$BASE_IMAGE"
}

# build_service IMAGE EXTRA_HASH_INPUT CONTEXT_DIR [podman build args...]
build_service() {
  local image=$1 extra=$2 context=$3 inputs
  shift 3
  inputs=$(inputs_hash "$(image_id "$BASE_IMAGE")" "$extra" "$context" "$*")
  [[ $(image_hash "$image") == "$inputs" ]] && return 0
  quietly podman build --pull=never --label "$HASH_LABEL=$inputs" --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    -f "$context/Containerfile" -t "$image" "$@" "$context"
}

build_redis() {
  local deb_version=${DEB_VERSION[redis-server]} tag
  # "5:7.0.15-1~deb12u4" -> "7.0.15"
  tag=${deb_version#*:}
  tag=${tag%%-*}
  REDIS_LOCAL_IMAGE=localhost/ensemble-stream-redis:$tag
  build_service "$REDIS_LOCAL_IMAGE" "$deb_version" "$IMAGES_DIR/redis" \
    --build-arg "REDIS_DEB_VERSION=$deb_version"
}

build_kafka() {
  local context=$WORK/kafka-context
  # Resolves the jars with Maven (cached in ~/.m2; instant when lib/ is already complete).
  bash "$ROOT/infra/local/kafka.sh" fetch
  [[ -n $(find "$KAFKA_LIB_DIR" -maxdepth 1 -name "kafka_*-$KAFKA_VERSION.jar" -print -quit) ]] ||
    die "$KAFKA_LIB_DIR has no Kafka $KAFKA_VERSION broker jar (KAFKA_VERSION in infra/versions.env)"
  KAFKA_LOCAL_IMAGE=localhost/ensemble-stream-kafka:$KAFKA_VERSION
  # The jars live outside the recipe folder: assemble one build context from both (hard links: no copy).
  mkdir -p "$context"
  cp -a "$IMAGES_DIR/kafka/." "$context/"
  cp -al "$KAFKA_LIB_DIR" "$context/libs" 2>/dev/null || cp -a "$KAFKA_LIB_DIR" "$context/libs"
  build_service "$KAFKA_LOCAL_IMAGE" "$KAFKA_VERSION ${DEB_VERSION[openjdk-17-jre-headless]}" "$context"
}

read_deb_versions redis-server openjdk-17-jre-headless
build_base
build_redis
build_kafka
# Earlier builds of these images, now untagged.
quietly podman image prune -f --filter "label=$HASH_LABEL"
echo "export KAFKA_IMAGE=$KAFKA_LOCAL_IMAGE REDIS_IMAGE=$REDIS_LOCAL_IMAGE"
