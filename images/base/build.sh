#!/usr/bin/env bash
# Build the local Jupyter base image (booklab/base:<tag>) without any registry:
# debootstrap a minimal Debian, install Python from Debian's packages and JupyterLab 4
# (with notebook 7, so that `jupyter notebook` runs as in repo2docker's images) from PyPI
# into a virtual environment in it, then `docker import` the tree. Does nothing when the
# image already exists.
# Usage: images/base/build.sh [IMAGE]     (default: booklab/base:bookworm-5)
set -euo pipefail

image=${1:-${BOOKLAB_BASE_IMAGE:-booklab/base:bookworm-5}}
suite=bookworm
venv=/opt/jupyter
# the Jupyter that notebooks run, by major version; jupyterhub for jupyterhub-singleuser, which a site's
# JupyterHub runs in Booklab's images (launch/target: jupyterhub), of the hub's major version
jupyter_packages=('jupyterlab>=4,<5' 'notebook>=7,<8' 'ipykernel>=6,<7' 'jupyterhub>=6,<7')

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

# pip in the tree trusts what the host's pip trusts (a proxy's CA, say), and uses its index.
host_pip_config() { python3 -m pip config get "global.$1" 2>/dev/null || true; }
ca_bundle=${PIP_CERT:-$(host_pip_config cert)}
ca_bundle=${ca_bundle:-/etc/ssl/certs/ca-certificates.crt}
index_url=${PIP_INDEX_URL:-$(host_pip_config index-url)}

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
    python3 python3-venv git openssh-client ca-certificates >/dev/null'
chroot "$rootfs" sh -c 'useradd --create-home --uid 1000 jovyan'

echo "installing ${jupyter_packages[*]} from the package index"
cp "$ca_bundle" "$rootfs/tmp/pip-ca.crt"
chroot "$rootfs" env -i PATH=/usr/bin:/bin HOME=/root \
  PIP_CERT=/tmp/pip-ca.crt PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
  ${index_url:+PIP_INDEX_URL="$index_url"} \
  ${http_proxy:+http_proxy="$http_proxy"} ${https_proxy:+https_proxy="$https_proxy"} \
  ${no_proxy:+no_proxy="$no_proxy"} \
  sh -c 'python3 -m venv "$0" && "$0/bin/pip" install --quiet "$@"' "$venv" "${jupyter_packages[@]}"
# JupyterLab neither asks to fetch Jupyter's news nor looks for updates: a notebook may have no internet
mkdir -p "$rootfs$venv/share/jupyter/lab/settings"
echo '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' \
  > "$rootfs$venv/share/jupyter/lab/settings/overrides.json"
# the notebook's user may install packages into it, as in repo2docker's images
chroot "$rootfs" chown -R jovyan:jovyan "$venv"

# no caches, manuals or translations (licences stay)
rm -rf "$rootfs"/tmp/* "$rootfs"/root/.cache "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
  "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
find "$rootfs"/usr/share/doc -type f ! -name copyright -delete
: > "$rootfs/etc/resolv.conf"

tar -C "$rootfs" -c . | docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change "ENV PATH=$venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change 'USER jovyan' \
  --change 'WORKDIR /home/jovyan' \
  --change 'CMD ["jupyter", "notebook", "--ip=0.0.0.0", "--no-browser"]' \
  - "$image" >/dev/null
echo "built $image"
