#!/usr/bin/env bash
# Prepare what travels to a GPU host without network, and print the one command to run there.
#
# The GPU host is assumed to have Python 3.12 with torch, transformers (+ tokenizers, safetensors,
# huggingface_hub), nvidia-ml-py, numpy, pandas, pyarrow, scipy, click, rich, pyyaml, httpx and
# matplotlib. This script downloads manylinux x86_64 / CPython 3.12 wheels of everything else the
# orchestrator, the harness, `llem models make` and `pytest -m gpu` import (TRAVEL_PACKAGES below;
# pinned to the versions this checkout is tested with) into an ignored folder, checks that the
# working tree plus the wheels stay within the size limit, and prints the command.
#
#   scripts/gpu-travel-prepare.sh [--check-only]   # env: LLEM_TRAVEL_LIMIT_MIB (default 64), LLEM_TRAVEL_WHEELS
#
# --check-only: no download; size check of what is already there (used by the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=${LLEM_TRAVEL_WHEELS:-.cache/gpu-travel/wheels}  # .cache/ is git-ignored: carried explicitly, never committed
LIMIT_MIB=${LLEM_TRAVEL_LIMIT_MIB:-64}
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
# name==version: pydantic and its parts, the Docker SDK and its HTTP stack (imported only by the
# Docker runner, carried so that no code path meets an ImportError), gguf (`llem models make`
# builds the tiny tokenizer model, which writes a GGUF file), pytest and its plugins' base.
TRAVEL_PACKAGES=(pydantic pydantic-core annotated-types typing-inspection typing-extensions
                 docker requests urllib3 idna certifi charset-normalizer gguf
                 pytest pluggy iniconfig)

pinned() {  # the version installed in this checkout's environment, so the GPU host runs what we tested
  "$PYTHON" - "$@" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version
for name in sys.argv[1:]:
    try:
        print(f"{name}=={version(name)}")
    except PackageNotFoundError:
        print(name)
EOF
}

if [ "${1:-}" != "--check-only" ]; then
  rm -rf "$WHEELS" && mkdir -p "$WHEELS"
  mapfile -t specs < <(pinned "${TRAVEL_PACKAGES[@]}")
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --dest "$WHEELS" \
    --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
    --platform any "${specs[@]}" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
fi
[ -d "$WHEELS" ] || { echo "no wheels in $WHEELS: run scripts/gpu-travel-prepare.sh first" >&2; exit 2; }

# What travels: tracked + untracked-but-not-ignored files, plus the wheels folder.
tree_bytes=$(git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [ -f "$f" ] && stat -c %s "$f"; done | awk '{s+=$1} END {print s+0}')
wheel_bytes=$(du -sb "$WHEELS" | cut -f1)
total=$((tree_bytes + wheel_bytes))
limit=$((LIMIT_MIB * 1024 * 1024))
printf 'travel size: working tree %.1f MiB + wheels %.1f MiB (%d files) = %.1f MiB (limit %d MiB)\n' \
  "$(echo "$tree_bytes/1048576" | bc -l)" "$(echo "$wheel_bytes/1048576" | bc -l)" \
  "$(ls "$WHEELS" | wc -l)" "$(echo "$total/1048576" | bc -l)" "$LIMIT_MIB"
if [ "$total" -gt "$limit" ]; then
  echo "travel size over the limit: remove large untracked files or trim the wheel list" >&2
  exit 1
fi
cat <<EOF
Carry: $WHEELS
Run on the GPU host, from the repository root (one command; about 8 minutes; stops itself at 9):
  T=\$(mktemp -d) && python3 -m pip install -q --no-index --no-deps --target "\$T" $WHEELS/*.whl && PYTHONPATH="\$T:\$PWD/orchestrator:\$PWD/harness:\$PWD" timeout -k 15 525 python3 bench/gpu_validation.py "\${OUT:-/tmp/llem-gpu-validation}/gpu-validation" --budget-s 470
EOF
