#!/usr/bin/env bash
# Build Sluice's container images with podman on a machine that reaches no container registry.
#
#   docker/build-local.sh [base|runtime|bundled|all]     (default: runtime)
#
# What it does (each step is skipped when its result already exists):
#   1. a local Debian base image, made once: debootstrap --variant=minbase bookworm from the
#      mirror apt already uses, then `podman import` (about a minute; reused afterwards);
#   2. a containers.conf for this sandbox (runtime runc, bounded default ulimits) in the cache
#      folder, pointed at by CONTAINERS_CONF (unless you set CONTAINERS_CONF yourself);
#   3. `podman build --format docker` (the OCI format drops HEALTHCHECK) of docker/Dockerfile,
#      passing two optional build contexts that exist only during the build, never in an image:
#      `certs` (this machine's CA bundle, for an intercepting HTTPS proxy) and `wheels` (local
#      wheels, e.g. the CPU build of torch for the bundled target).
# It prints how long each step took and the size of each image.
#
# Environment (all optional):
#   IMAGE=localhost/sluice        image name; tags :cpu (runtime) and :bundled
#   BASE_IMAGE=...                build from this image instead of the local Debian base
#                                 (e.g. python:3.12-slim where a registry is reachable)
#   BUILD_PROFILE=full|smoke      what `--target bundled` builds (smoke: seconds, for CI)
#   BUILD_MODELS="a b"            which default models the bundled target bakes in
#   WHEELS_DIR=/opt/wheels        local wheels folder (default: /opt/wheels if it exists)
#   CA_BUNDLE=/path/bundle.crt    CA bundle for pip inside the build (default: the system's)
#   SLUICE_IMAGE_CACHE=DIR        where the containers.conf and contexts live
#                                 (default: ~/.cache/sluice-images)
#   PODMAN_BUILD_ARGS="..."       extra arguments for podman build (e.g. --no-cache)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${IMAGE:-localhost/sluice}"
LOCAL_BASE="localhost/debian-base:bookworm"
# a base made by an older recipe of slim_rootfs is made again
BASE_LABEL="org.sluice.base-recipe"
BASE_RECIPE="2"
CACHE="${SLUICE_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice-images}"
BUILD_PROFILE="${BUILD_PROFILE:-full}"
BUILD_MODELS="${BUILD_MODELS:-airline-sentiment review-sentiment home-intent}"

say() { printf 'build-local: %s\n' "$*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# The Debian mirror apt uses here (deb822 .sources first, then the one-line format).
apt_mirror() {
  local uri
  uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  if [ -z "$uri" ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
      /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

ensure_containers_conf() {
  local conf="$CACHE/containers.conf"
  if [ -n "${CONTAINERS_CONF:-}" ] && [ "$CONTAINERS_CONF" != "$conf" ]; then
    return  # yours
  fi
  mkdir -p "$CACHE"
  # Debian's crun refuses this sandbox's hybrid cgroup layout, and podman's default nofile
  # (1048576) is above its hard limit: runc and bounded ulimits work everywhere.
  {
    echo '[containers]'
    echo 'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]'
    if command -v runc >/dev/null || [ -x /usr/sbin/runc ]; then
      printf '[engine]\nruntime = "runc"\n'
    fi
  } >"$conf.tmp"
  mv "$conf.tmp" "$conf"
  export CONTAINERS_CONF="$conf"
}

# What Debian's own slim images leave out: the downloaded .debs, package lists and caches, and
# documentation, manuals and translations (kept out of later apt installs too; copyrights stay).
slim_rootfs() {
  local rootfs="$1"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/*
  find "$rootfs"/usr/share/doc -type f ! -name copyright -delete
  find "$rootfs"/usr/share/doc -type d -empty -delete
  rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
  cat >"$rootfs"/etc/dpkg/dpkg.cfg.d/01-slim <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
  printf 'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n' >"$rootfs"/etc/apt/apt.conf.d/01-no-cache
}

# Make the local Debian base once; a lock keeps two builds from making it at the same time.
ensure_base() {
  if [ -n "${BASE_IMAGE:-}" ]; then
    return
  fi
  BASE_IMAGE="$LOCAL_BASE"
  mkdir -p "$CACHE"
  exec 9>"$CACHE/base.lock"
  flock 9
  if podman image exists "$LOCAL_BASE"; then
    if [ "$(podman image inspect --format "{{ index .Labels \"$BASE_LABEL\" }}" "$LOCAL_BASE")" = "$BASE_RECIPE" ]; then
      say "base $LOCAL_BASE exists, reused"
      flock -u 9
      return
    fi
    say "base $LOCAL_BASE was made by another recipe: making it again"
  fi
  local debootstrap mirror rootfs start
  debootstrap=$(command -v debootstrap || echo /usr/sbin/debootstrap)
  [ -x "$debootstrap" ] || { say "debootstrap is not installed (apt-get install -y debootstrap)"; exit 1; }
  mirror=$(apt_mirror)
  rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  start=$(now)
  say "making $LOCAL_BASE: debootstrap minbase bookworm from $mirror"
  "$debootstrap" --variant=minbase bookworm "$rootfs" "$mirror" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
  slim_rootfs "$rootfs"
  tar -C "$rootfs" -c . \
    | podman import --change 'CMD ["/bin/bash"]' --change "LABEL $BASE_LABEL=$BASE_RECIPE" - "$LOCAL_BASE" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
  flock -u 9
  say "base made in $(since "$start")s ($(image_mb "$LOCAL_BASE") MB)"
}

# The optional build contexts: a folder with this machine's CA bundle, and the wheels folder.
ensure_contexts() {
  mkdir -p "$CACHE/certs" "$CACHE/no-wheels"
  local bundle="${CA_BUNDLE:-${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}}"
  if [ -f "$bundle" ]; then
    cp "$bundle" "$CACHE/certs/ca-certificates.crt"
  else
    rm -f "$CACHE/certs/ca-certificates.crt"
  fi
  if [ -z "${WHEELS_DIR:-}" ]; then
    if [ -d /opt/wheels ]; then WHEELS_DIR=/opt/wheels; else WHEELS_DIR="$CACHE/no-wheels"; fi
  fi
}

image_mb() {
  podman image inspect --format '{{.Size}}' "$1" | awk '{ printf "%.0f", $1 / 1000000 }'
}

# build TARGET TAG: one `podman build` of docker/Dockerfile.
build() {
  local target="$1" tag="$2" start extra=()
  # TORCH_INDEX is PyTorch's CPU wheel index by default; a local wheels folder replaces it
  # (download.pytorch.org is not reachable everywhere)
  if [ -n "$(ls "$WHEELS_DIR"/torch-*.whl 2>/dev/null)" ]; then
    extra+=(--build-arg TORCH_INDEX=)
  fi
  start=$(now)
  say "building $tag (target $target, base $BASE_IMAGE)"
  # shellcheck disable=SC2086  # PODMAN_BUILD_ARGS is a list of words
  podman build --format docker -f "$ROOT/docker/Dockerfile" --target "$target" -t "$tag" \
    --build-arg BASE_IMAGE="$BASE_IMAGE" \
    --build-arg BUILD_PROFILE="$BUILD_PROFILE" --build-arg BUILD_MODELS="$BUILD_MODELS" \
    --build-arg REVISION="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    --build-context certs="$CACHE/certs" --build-context wheels="$WHEELS_DIR" \
    "${extra[@]}" ${PODMAN_BUILD_ARGS:-} "$ROOT"
  say "built $tag in $(since "$start")s: $(image_mb "$tag") MB"
}

main() {
  local what="${1:-runtime}"
  case "$what" in
    base|runtime|bundled|all) ;;
    *) echo "usage: $0 [base|runtime|bundled|all]" >&2; exit 2 ;;
  esac
  command -v podman >/dev/null || { say "podman is not installed (apt-get install -y podman runc)"; exit 1; }
  ensure_containers_conf
  ensure_base
  ensure_contexts
  if [ "$what" = base ]; then return; fi
  if [ "$what" != bundled ]; then build runtime "$IMAGE:cpu"; fi
  if [ "$what" != runtime ]; then build bundled "$IMAGE:bundled"; fi
}

main "$@"
