#!/usr/bin/env bash
# Build the runner image without a registry: make a wheelhouse of Booklab and everything it
# needs on this host (pip reaches the package index), then install it in the image offline.
# Usage: workers/build.sh [IMAGE]      (default: booklab/runner:latest)
set -euo pipefail
cd "$(dirname "$0")/.."

image=${1:-booklab/runner:latest}
base=${BOOKLAB_BASE_IMAGE:-booklab/base:bookworm-4}
images/base/build.sh "$base"

context=$(mktemp -d "${TMPDIR:-/tmp}/booklab-runner.XXXXXX")
trap 'rm -rf "$context"' EXIT
# async-timeout: redis needs it on Debian's Python 3.11.2 (before 3.11.3), whatever this host runs
python3 -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$context/wheels" . pip async-timeout
cp workers/Dockerfile "$context/"
DOCKER_BUILDKIT=0 docker build --quiet --build-arg "BASE_IMAGE=$base" --tag "$image" "$context" >/dev/null
echo "built $image"
