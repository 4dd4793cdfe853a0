#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite. Docker tests build the transformers
# image once per session (base: LLEM_TEST_BASE_IMAGE, default the image's own pinned base) and
# skip when no Docker daemon is reachable; GPU tests skip without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
