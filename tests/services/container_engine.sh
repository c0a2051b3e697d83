#!/usr/bin/env bash
# The container engine the deployer's tests use, started on this machine if it is not running yet: podman's
# Docker-compatible API on a unix socket, a Distribution registry on loopback with htpasswd auth, a busybox base
# image made locally (no public registry is reachable here) and a tiny HTTP app pushed in four versions:
#   v1, v2  healthy (GET / answers "app vN", GET /healthz answers 200)
#   v3      broken: /healthz answers 404, forever
#   crash   exits at once
# Everything is machine-wide (podman's storage is anyway), so every worktree shares one engine and registry.
# Idempotent: a second run only checks that things answer (a few seconds). Needs root; the steps are those of
# ../shared/notes/container-engine.md. Writes $STATE/env, which tests/environments/conftest.py reads.
set -euo pipefail

STATE=${PORTAL_TEST_ENGINE_STATE:-/run/portal-test-engine}          # sockets, pids, the env file: gone at reboot
DATA=${PORTAL_TEST_ENGINE_DATA:-/var/lib/portal-test-engine}        # registry storage and password: kept
REGISTRY_PORT=${PORTAL_TEST_REGISTRY_PORT:-5055}
REGISTRY=127.0.0.1:$REGISTRY_PORT
SOCKET=$STATE/podman.sock
REPOSITORY=$REGISTRY/portal-test/app
BASE=localhost/portal-test/busybox:1
HERE=$(cd "$(dirname "$0")" && pwd)

say() { echo "container engine: $*"; }

if [ "$(id -u)" != 0 ]; then
  say "not root: cannot install or start podman and the registry; the tests that need them will skip"
  exit 0
fi
mkdir -p "$STATE" "$DATA"
chmod 700 "$DATA"

# 1. Packages, from Debian.
missing=""
command -v podman >/dev/null || missing="$missing podman"
command -v docker-registry >/dev/null || missing="$missing docker-registry"
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx httpd || missing="$missing busybox-static"
if [ -n "$missing" ]; then
  say "installing$missing"
  apt-get update -qq
  # shellcheck disable=SC2086  # one word per package
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# 2. cgroups: crun refuses a cgroup2 hierarchy that still holds hugetlb next to v1 controllers ("hybrid mode").
if [ -d /sys/fs/cgroup/cpu ] && ! mountpoint -q /sys/fs/cgroup/hugetlb; then
  mkdir -p /sys/fs/cgroup/hugetlb
  mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
fi

# 3. rlimits: the sandbox cannot raise them, and podman's default nofile (1048576) fails; soft must equal hard.
mkdir -p /etc/containers/containers.conf.d /etc/containers/registries.conf.d
ulimits=$'[containers]\ndefault_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]\n'
[ "$(cat /etc/containers/containers.conf.d/ulimits.conf 2>/dev/null)"$'\n' = "$ulimits" ] \
  || printf '%s' "$ulimits" > /etc/containers/containers.conf.d/ulimits.conf

# 4. The registry, on loopback, with htpasswd auth (the tests also try wrong credentials).
[ -s "$DATA/registry-password" ] || (umask 077; python3 -c 'import secrets; print(secrets.token_hex(16))' > "$DATA/registry-password")
PASSWORD=$(cat "$DATA/registry-password")
# Distribution takes bcrypt only; Debian's libxcrypt makes it (apache2-utils' htpasswd is not needed). The lowest
# cost (2^4): the registry checks the password on every request, and at the default cost each check takes a second.
# shellcheck disable=SC2016  # the bcrypt prefix, literally
if ! grep -q '^portal:\$2b\$04\$' "$DATA/htpasswd" 2>/dev/null; then
  python3 -W ignore -c 'import crypt, sys; print("portal:" + crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))' \
    "$PASSWORD" > "$DATA/htpasswd"
  [ -s "$STATE/registry.pid" ] && kill "$(cat "$STATE/registry.pid")" 2>/dev/null && sleep 1 || true
fi
cat > "$DATA/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $DATA/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY
auth:
  htpasswd:
    realm: portal-test
    path: $DATA/htpasswd
EOF
insecure=$(printf '[[registry]]\nlocation = "%s"\ninsecure = true\n' "$REGISTRY")
registries_changed=false
if [ "$(cat /etc/containers/registries.conf.d/portal-test.conf 2>/dev/null)" != "$insecure" ]; then
  printf '%s\n' "$insecure" > /etc/containers/registries.conf.d/portal-test.conf
  registries_changed=true
fi
registry_up() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$REGISTRY/v2/")" = 401 ]; }
if ! registry_up; then
  say "starting the registry on $REGISTRY"
  setsid nohup docker-registry serve "$DATA/registry.yml" >"$STATE/registry.log" 2>&1 < /dev/null &
  echo $! > "$STATE/registry.pid"
  for _ in $(seq 50); do registry_up && break; sleep 0.2; done
  registry_up || { say "the registry did not start:"; tail -5 "$STATE/registry.log"; exit 1; }
fi

# 5. podman's Docker-compatible API. It reads the registries' configuration when it starts.
engine_up() { curl -sf --max-time 5 --unix-socket "$SOCKET" http://d/_ping >/dev/null 2>&1; }
if $registries_changed && [ -s "$STATE/podman.pid" ] && kill -0 "$(cat "$STATE/podman.pid")" 2>/dev/null; then
  kill "$(cat "$STATE/podman.pid")"; sleep 1
fi
# A service left running can answer its ping yet fail every container start ("write child: broken pipe", seen
# after a long idle): when the app image is there, start one container through the API, and restart on failure.
if engine_up && podman image exists "$REPOSITORY:v1" \
  && ! timeout 30 podman --url "unix://$SOCKET" run --rm "$REPOSITORY:v1" /bin/sh -c true >/dev/null 2>&1; then
  say "podman's API answers but cannot start a container: restarting it"
  pkill -f "podman system service --time=0 unix://$SOCKET" || true; sleep 1
fi
if ! engine_up; then
  say "starting podman's API on unix://$SOCKET"
  rm -f "$SOCKET"
  setsid nohup podman system service --time=0 "unix://$SOCKET" >"$STATE/podman.log" 2>&1 < /dev/null &
  echo $! > "$STATE/podman.pid"
  for _ in $(seq 100); do engine_up && break; sleep 0.2; done
  engine_up || { say "podman's API did not start:"; tail -5 "$STATE/podman.log"; exit 1; }
fi

# Credentials stay with each call: a stored login would let a pull without credentials through.
podman logout "$REGISTRY" >/dev/null 2>&1 || true

# 6. Images: a busybox base made here, then the app in its versions, pushed by digest. Rebuilt when this script
# or the app's files change (the stamp is their hash), or when the registry lost them.
stamp=$(cat "$0" "$HERE"/app/* | sha256sum | cut -c1-16)
pushed() {
  [ "$(cat "$DATA/images.stamp" 2>/dev/null)" = "$stamp" ] || return 1
  for version in v1 v2 v3 crash; do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -u "portal:$PASSWORD" \
      -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
      -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
      "http://$REGISTRY/v2/portal-test/app/manifests/$(cat "$DATA/digest-$version" 2>/dev/null)")" = 200 ] || return 1
  done
}
if ! pushed; then
  say "building the app images"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  if ! podman image exists "$BASE"; then
    mkdir -p "$work/base/bin" "$work/base/tmp" "$work/base/etc"
    cp /bin/busybox "$work/base/bin/busybox"
    for applet in sh httpd wget echo cat sleep ls; do ln -s busybox "$work/base/bin/$applet"; done
    echo 'root:x:0:0:root:/:/bin/sh' > "$work/base/etc/passwd"
    tar -C "$work/base" -c . | podman import -q - "$BASE" >/dev/null
  fi
  for version in v1 v2 v3 crash; do
    context="$work/$version"
    mkdir -p "$context/www"
    cp "$HERE/app/Dockerfile" "$context/"
    echo "app $version" > "$context/www/index.html"
    [ "$version" = v3 ] || echo ok > "$context/www/healthz"           # v3 has no health page: 404
    command='["httpd", "-f", "-p", "8080", "-h", "/www"]'
    [ "$version" != crash ] || command='["sh", "-c", "echo crashing; exit 3"]'
    echo "CMD $command" >> "$context/Dockerfile"
    podman build -q --build-arg "BASE=$BASE" -t "$REPOSITORY:$version" "$context" >/dev/null
    podman push -q --creds "portal:$PASSWORD" --digestfile "$DATA/digest-$version" "$REPOSITORY:$version"
  done
  echo "$stamp" > "$DATA/images.stamp"
fi

cat > "$STATE/env" <<EOF
PORTAL_TEST_DOCKER_HOST=unix://$SOCKET
PORTAL_TEST_REGISTRY=$REGISTRY
PORTAL_TEST_REGISTRY_USER=portal
PORTAL_TEST_REGISTRY_PASSWORD=$PASSWORD
PORTAL_TEST_APP_REPOSITORY=$REPOSITORY
PORTAL_TEST_APP_V1=$(cat "$DATA/digest-v1")
PORTAL_TEST_APP_V2=$(cat "$DATA/digest-v2")
PORTAL_TEST_APP_V3=$(cat "$DATA/digest-v3")
PORTAL_TEST_APP_CRASH=$(cat "$DATA/digest-crash")
EOF
chmod 600 "$STATE/env"
say "engine unix://$SOCKET, registry http://$REGISTRY (user portal), app $REPOSITORY v1 v2 v3 crash; settings in $STATE/env"
