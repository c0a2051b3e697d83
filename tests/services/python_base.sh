#!/usr/bin/env bash
# A Python 3.11 base image made on this machine, standing in for python:3.11-slim-bookworm (no public registry is
# reachable here): Debian bookworm's minimal system with its python3 (3.11) and venv, by debootstrap from Debian's
# package mirror, imported into podman. Then the portal's web image is built on it once, so that the layers with
# the wheels are cached and tests/deploy_assets/test_portal_image.py only rebuilds what changed.
# Machine-wide and idempotent: a second run finds the image and only rebuilds the portal's (seconds when cached).
# Needs root and the engine of container_engine.sh (run it first); without them, says why and leaves.
set -euo pipefail

BASE=${PORTAL_TEST_PYTHON_BASE:-localhost/portal-test/python:3.11-bookworm}
WEB=${PORTAL_TEST_WEB_IMAGE:-localhost/portal-test/portal-web:latest}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

say() { echo "python base: $*"; }

if [ "$(id -u)" != 0 ] || ! command -v podman >/dev/null; then
  say "not root or no podman: the portal image test will skip"
  exit 0
fi

# This machine's certificate authorities (a sandbox may reach PyPI through a proxy that re-signs TLS), so that pip
# in the build trusts what the host trusts; pip's own bundle does not know them, hence PIP_CERT. Only the local
# stand-in base carries them: the Dockerfile itself assumes an ordinary network.
import_base() {
  cp /etc/ssl/certs/ca-certificates.crt "$1/etc/ssl/certs/ca-certificates.crt"
  tar -C "$1" -c . | podman import -q \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' - "$BASE" >/dev/null
}

if ! podman image exists "$BASE"; then
  command -v debootstrap >/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  }
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  say "making $BASE with debootstrap from Debian's mirror (a few minutes, once)"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$work/root" \
    >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log"; exit 1; }
  # The package lists and caches are not needed in an image; python:3.11-slim ships without them too.
  rm -rf "$work/root/var/cache/apt/archives"/*.deb "$work/root/var/lib/apt/lists"/*
  import_base "$work/root"
fi

# The web image, on that base: the first build downloads the wheels from PyPI (a few minutes), later ones reuse
# the cached layers unless requirements.txt changed.
say "building the portal's web image $WEB"
# A failure here (PyPI unreachable, a broken Dockerfile) leaves the base in place: the image test rebuilds and shows it.
if podman build -q --layers --format docker --build-arg "PYTHON_IMAGE=$BASE" --target web -t "$WEB" \
  -f "$ROOT/Dockerfile" "$ROOT" >/dev/null; then
  say "$BASE and $WEB ready"
else
  say "$BASE ready, but the web image did not build: tests/deploy_assets/test_portal_image_runs.py will say why"
fi
