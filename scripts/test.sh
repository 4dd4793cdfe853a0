#!/usr/bin/env bash
# Set up everything (scripts/setup.sh --all: adds the llama.cpp engine, compiled once, and the test
# tools) and run the whole test suite. Docker tests build the transformers image once per session
# (base: LLEM_TEST_BASE_IMAGE, default the image's own pinned base) and skip when no Docker daemon
# is reachable; GPU tests skip without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --all
exec .venv/bin/python -m pytest "$@"
