#!/bin/sh
# Moves the checkout to the commit the portal asked for (COMMIT parameter), refusing anything that is not a commit
# of the branch being built: a build of master must never deploy a commit that only exists elsewhere.
# Usage: checkout-commit.sh [<sha>]    (no sha, or an empty one: stay on the branch head)
set -eu

commit="${1:-}"
if [ -z "${commit}" ]; then
    echo "Building the head of the branch: $(git rev-parse HEAD)"
    exit 0
fi
if ! printf '%s' "${commit}" | grep -Eq '^[0-9a-f]{7,40}$'; then
    echo "COMMIT must be a hexadecimal commit sha (7 to 40 characters), got: ${commit}" >&2
    exit 2
fi
if ! git cat-file -e "${commit}^{commit}" 2>/dev/null; then
    echo "Commit ${commit} is not in this clone (fetch depth, or another repository?)" >&2
    exit 3
fi
if ! git merge-base --is-ancestor "${commit}" HEAD; then
    echo "Commit ${commit} is not on the branch being built ($(git rev-parse HEAD)); refusing to build it" >&2
    exit 4
fi
git checkout --quiet --detach "${commit}"
echo "Building commit $(git rev-parse HEAD)"
