#!/bin/sh
# Prints the registry (manifest) digest of a pushed image, "sha256:<64 hex>": the digest deployments pull by.
# Usage: image-digest.sh <repository>:<tag>      (after "docker push" of that reference)
set -eu

reference="${1:?usage: image-digest.sh <repository>:<tag>}"
repository="${reference%:*}"

# RepoDigests lists "<repository>@sha256:..." for every repository the image was pushed to or pulled from.
digest=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "${reference}" |
    awk -v repo="${repository}" 'index($0, repo "@") == 1 { print substr($0, length(repo) + 2); exit }')

if ! printf '%s' "${digest}" | grep -Eq '^sha256:[0-9a-f]{64}$'; then
    echo "No registry digest for ${reference} (was it pushed?)" >&2
    exit 1
fi
printf '%s\n' "${digest}"
