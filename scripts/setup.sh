#!/usr/bin/env bash
# Set up a virtual environment in .venv with llenergymeasure, the transformers engine and the
# test tools. Idempotent. torch is pinned through a constraints file (default .ci/constraints.txt,
# override with LLEM_CONSTRAINTS=path, or LLEM_CONSTRAINTS= to let pip choose).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
CONSTRAINTS=${LLEM_CONSTRAINTS-.ci/constraints.txt}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
args=(-q -e ".[transformers,test]")
[ -n "$CONSTRAINTS" ] && args=(-c "$CONSTRAINTS" "${args[@]}")
.venv/bin/python -m pip install "${args[@]}" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
.venv/bin/llem --version
