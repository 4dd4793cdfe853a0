#!/usr/bin/env bash
# CI only: build the transformers image FROM the local CI base (no registry is reachable on the CI
# machines). Assumes ../shared/ci/docker-up.sh already ran (daemon up, base image present).
# Users build with the Dockerfile's default base instead: `llem images build transformers`.
#
#   scripts/ci-build-images.sh            # BASE_IMAGE defaults to llem-ci-base:py311-torch-cpu
#   LLEM_CI_BASE_IMAGE=other:tag scripts/ci-build-images.sh
set -euo pipefail

cd "$(dirname "$0")/.."
BASE=${LLEM_CI_BASE_IMAGE:-llem-ci-base:py311-torch-cpu}
LLEM=${LLEM_BIN:-.venv/bin/llem}
[ -x "$LLEM" ] || LLEM=llem

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  echo "ci-build-images: base image $BASE not found; run ../shared/ci/docker-up.sh first" >&2
  exit 1
fi
start=$(date +%s)
"$LLEM" images build transformers --base-image "$BASE" --quiet
echo "ci-build-images: built in $(( $(date +%s) - start )) s from $BASE" >&2
