#!/usr/bin/env bash
# Install what Booklab's tests and local demo need on a Debian machine, then the project
# itself (editable, with its test and demo extras). Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(docker.io docker-compose redis-server openssh-server git debootstrap chromium docker-registry apache2-utils
  node-configurable-http-proxy)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

python3 -m pip install -q --disable-pip-version-check -e ".[test,demo,hub]"
