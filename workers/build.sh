#!/usr/bin/env bash
# Build the runner image without a registry: make a wheelhouse of Booklab and everything it
# needs, and download iptables' Debian packages, on this host (pip and apt reach their package
# indexes), then install them in the image offline.
# Usage: workers/build.sh [IMAGE]      (default: booklab/runner:latest)
set -euo pipefail
cd "$(dirname "$0")/.."

image=${1:-booklab/runner:latest}
base=${BOOKLAB_BASE_IMAGE:-booklab/base:bookworm-5}
images/base/build.sh "$base"

context=$(mktemp -d "${TMPDIR:-/tmp}/booklab-runner.XXXXXX")
trap 'rm -rf "$context"' EXIT
# async-timeout: redis needs it on Debian's Python 3.11.2 (before 3.11.3), whatever this host runs
python3 -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$context/wheels" . pip async-timeout
# iptables, with which a runner sets its notebooks' firewall rules (notebook/reachable_from,
# notebook/unreachable: docs/SCALING.md): Debian's package (nf_tables backend) and those of its
# dependencies that the base image lacks, downloaded here by this host's apt (the same Debian
# release as the base image's) and installed in the image with dpkg
in_base() { docker run --rm --network none --entrypoint sh "$base" -c "$1"; }
host_release=$(. /etc/os-release && echo "${ID:-} ${VERSION_CODENAME:-}")
base_release=$(in_base '. /etc/os-release && echo "$ID $VERSION_CODENAME"')
if [ "$host_release" != "$base_release" ]; then
  echo "the runner image takes iptables from $base_release, which this host's apt does not fetch" \
    "(this host runs $host_release): build it on a host of that release" >&2
  exit 1
fi
if ! apt-cache show iptables >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -q >/dev/null
fi
if ! apt-cache show iptables >/dev/null 2>&1; then
  echo "this host's apt knows no iptables package: run apt-get update" >&2
  exit 1
fi
installed=$(in_base "dpkg-query -W -f '\${db:Status-Status} \${Package}\n'" | awk '$1 == "installed" {print $2}' | sort)
# package names only, not apt's <virtual packages>
needed=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
  --no-enhances iptables | grep -E '^[a-z0-9]' | sort -u | comm -23 - <(echo "$installed"))
mkdir "$context/debs"
if [ -n "$needed" ]; then
  # shellcheck disable=SC2086 # one package a word
  (cd "$context/debs" && apt-get download -q -o APT::Sandbox::User=root $needed >/dev/null) || {
    echo "apt-get could not download iptables' packages:" $needed >&2
    exit 1
  }
fi
cp workers/Dockerfile "$context/"
DOCKER_BUILDKIT=0 docker build --quiet --build-arg "BASE_IMAGE=$base" --tag "$image" "$context" >/dev/null
echo "built $image"
