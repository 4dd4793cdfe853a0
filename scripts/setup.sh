#!/usr/bin/env bash
# Set up a virtual environment in .venv with llenergymeasure and the transformers engine: what the
# quickstart needs, in a minute or two. Idempotent; each step says what it does and how long it
# took.
#   --all   also the llama.cpp engine and the test tools (scripts/test.sh passes it). llama-cpp-python
#           has no CPU wheel on PyPI: scripts/build-llama-wheel.sh compiles one into .wheels/ once
#           (CPU backend only; a few minutes on 2 cores); later runs and the llama_cpp image reuse it.
# torch is pinned through a constraints file (default .ci/constraints.txt; LLEM_CONSTRAINTS=path, or
# LLEM_CONSTRAINTS= to let pip choose).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
CONSTRAINTS=${LLEM_CONSTRAINTS-.ci/constraints.txt}
ALL=0
for arg in "$@"; do
  case "$arg" in
    --all) ALL=1 ;;
    *) echo "setup: unknown option '$arg' (use --all)" >&2; exit 2 ;;
  esac
done
source scripts/lib-progress.sh

step "creating .venv" "a few seconds"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
quiet_pip install -q 'pip>=24'
done_step

extras=transformers
[ "$ALL" = 1 ] && extras="transformers,llama_cpp,test"
if [ "$ALL" = 1 ]; then
  bash scripts/build-llama-wheel.sh
fi
# pip >= 24 normalises extra names (llama_cpp == llama-cpp, PEP 685); older pip ignores such extras.
step "installing llenergymeasure[$extras]" "1-2 min from a warm pip cache; torch (~200 MB) is the large download"
args=(-e ".[$extras]")
[ -d .wheels ] && args=(--find-links .wheels "${args[@]}")
[ -n "$CONSTRAINTS" ] && args=(-c "$CONSTRAINTS" "${args[@]}")
pip_with_progress install "${args[@]}"
done_step
echo "setup: $(.venv/bin/llem --version) ready in .venv ($(elapsed_total))" >&2
if [ "$ALL" = 0 ] && ! .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
  echo "setup: the llama.cpp engine and the test tools are not installed; 'bash scripts/setup.sh --all'" \
       "(or scripts/test.sh) adds them" >&2
fi
