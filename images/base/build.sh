#!/usr/bin/env bash
# Build the local Jupyter base image (booklab/base:<tag>) without any registry:
# debootstrap a minimal Debian, install Debian's own Jupyter packages in it, then
# `docker import` the tree. Does nothing when the image already exists.
# Usage: images/base/build.sh [IMAGE]     (default: booklab/base:bookworm-3)
set -euo pipefail

image=${1:-${BOOKLAB_BASE_IMAGE:-booklab/base:bookworm-3}}
suite=bookworm

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "base image $image already present"
  exit 0
fi

# Use the same Debian mirror as the host's own apt configuration.
mirror=$(grep -hoE '^(URIs:|deb)\s+\S+' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
  | awk '{print $2}' | grep -E '/debian/?$' | head -n 1 || true)
if [ -z "$mirror" ]; then
  echo "no Debian mirror found in the host's apt sources" >&2
  exit 1
fi

command -v debootstrap >/dev/null || apt-get install -y -q debootstrap

rootfs=$(mktemp -d "${TMPDIR:-/tmp}/booklab-base.XXXXXX")
cleanup() {
  for m in proc sys dev/pts; do umount "$rootfs/$m" 2>/dev/null || true; done
  rm -rf "$rootfs"
}
trap cleanup EXIT

echo "debootstrap $suite from $mirror"
debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >/dev/null
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
chroot "$rootfs" sh -c 'DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null &&
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    jupyter-notebook python3-ipykernel git openssh-client ca-certificates >/dev/null'
chroot "$rootfs" sh -c 'useradd --create-home --uid 1000 jovyan'
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
: > "$rootfs/etc/resolv.conf"

tar -C "$rootfs" -c . | docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'USER jovyan' \
  --change 'WORKDIR /home/jovyan' \
  --change 'CMD ["jupyter", "notebook", "--ip=0.0.0.0", "--no-browser"]' \
  - "$image" >/dev/null
echo "built $image"
