#!/usr/bin/env bash
# Prepare what travels to a GPU host without network, and print the one command to run there.
#
# The GPU host is assumed to have Python 3.12 with torch, transformers (+ tokenizers, safetensors,
# huggingface_hub), nvidia-ml-py, numpy, pandas, pyarrow, scipy, click, rich, pyyaml, httpx and
# matplotlib. This script downloads manylinux x86_64 / CPython 3.12 wheels of everything else the
# orchestrator, the harness, `llem models make` and `pytest -m gpu` import (TRAVEL_PACKAGES below)
# into an ignored folder, at exactly the versions in scripts/gpu-travel-pins.txt, checks that the
# working tree plus the wheels stay within the size limit, and prints the command.
#
#   scripts/gpu-travel-prepare.sh [--check-only | --update-pins]
#       env: LLEM_TRAVEL_LIMIT_MIB (default 64), LLEM_TRAVEL_WHEELS, PYTHON
#
# The pins are the versions the test suite ran with. They are committed, never read from whatever
# environment happens to be at hand (an empty .venv would give the newest releases, untested):
# --update-pins writes them from the environment the tests just passed in ($PYTHON), and refuses if
# a package is missing there. A package without a pin stops the preparation (exit 2).
# --check-only: no download; size check of what is already there (used by the tests).
# The download is one pip call without dependency resolution: well under 2 minutes on a normal link.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=${LLEM_TRAVEL_WHEELS:-.cache/gpu-travel/wheels}  # .cache/ is git-ignored: carried explicitly, never committed
LIMIT_MIB=${LLEM_TRAVEL_LIMIT_MIB:-64}
PINS=${LLEM_TRAVEL_PINS:-scripts/gpu-travel-pins.txt}
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
# pydantic and its parts, the Docker SDK and its HTTP stack (imported only by the Docker runner,
# carried so that no code path meets an ImportError), gguf (`llem models make` builds the tiny
# tokenizer model, which writes a GGUF file), pytest and what it needs (packaging >= 24 and pygments
# may be older or absent on the host).
TRAVEL_PACKAGES=(pydantic pydantic-core annotated-types typing-inspection typing-extensions
                 docker requests urllib3 idna certifi charset-normalizer gguf
                 pytest pluggy iniconfig packaging pygments)
T0=$(date +%s)

installed() {  # name==version as installed for $PYTHON; "MISSING name" when it is not
  "$PYTHON" -c '
import sys
from importlib.metadata import PackageNotFoundError, version
for name in sys.argv[1:]:
    try:
        print(f"{name}=={version(name)}")
    except PackageNotFoundError:
        print(f"MISSING {name}")' "$@"
}

if [ "${1:-}" = "--update-pins" ]; then
  mapfile -t found < <(installed "${TRAVEL_PACKAGES[@]}")
  missing=$(printf '%s\n' "${found[@]}" | grep '^MISSING' | cut -d' ' -f2 | tr '\n' ' ' || true)
  if [ -n "$missing" ]; then
    echo "cannot pin: ${missing}not installed for $PYTHON (run this in the environment the tests passed in)" >&2
    exit 2
  fi
  { echo "# Versions the test suite ran with, carried to the GPU host by scripts/gpu-travel-prepare.sh."
    echo "# Written by 'scripts/gpu-travel-prepare.sh --update-pins' from $("$PYTHON" -c 'import sys; print("Python", sys.version.split()[0])')."
    printf '%s\n' "${found[@]}"; } > "$PINS"
  echo "wrote $PINS (${#found[@]} pins)"
  exit 0
fi

[ -f "$PINS" ] || { echo "no $PINS: run scripts/gpu-travel-prepare.sh --update-pins where the tests passed" >&2; exit 2; }
specs=()
missing=()
for name in "${TRAVEL_PACKAGES[@]}"; do
  spec=$(grep -i -E "^${name}==" "$PINS" || true)
  if [ -z "$spec" ]; then missing+=("$name"); else specs+=("$spec"); fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "no pin in $PINS for: ${missing[*]} (run scripts/gpu-travel-prepare.sh --update-pins where the tests passed)" >&2
  exit 2
fi
# Where this checkout's environment runs other versions than the pins, say so: the pins may be stale.
mapfile -t here < <(installed "${TRAVEL_PACKAGES[@]}" 2>/dev/null || true)
for spec in "${specs[@]}"; do
  name=${spec%%==*}
  local_spec=$(printf '%s\n' "${here[@]}" | grep -i -E "^${name}==" || true)
  if [ -n "$local_spec" ] && [ "${local_spec,,}" != "${spec,,}" ]; then
    echo "note: $PYTHON has $local_spec, the pin is $spec (run --update-pins after the tests pass here)" >&2
  fi
done

if [ "${1:-}" != "--check-only" ]; then
  rm -rf "$WHEELS" && mkdir -p "$WHEELS"
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
echo "pinned: ${specs[*]}"
echo "prepared in $(( $(date +%s) - T0 )) s"
cat <<EOF
Carry: $WHEELS
Run on the GPU host, from the repository root (one command; at most 7.5 minutes; stopped at 8):
  T=\$(mktemp -d) && python3 -m pip install -q --no-index --no-deps --target "\$T" $WHEELS/*.whl && PYTHONPATH="\$T:\$PWD/orchestrator:\$PWD/harness:\$PWD" timeout -k 15 480 python3 bench/gpu_validation.py "\${OUT:-/tmp/llem-gpu-validation}/gpu-validation" --budget-s 450
EOF
