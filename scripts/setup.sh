#!/usr/bin/env bash
# Set up a virtual environment in .venv with llenergymeasure, the transformers and llama.cpp
# engines and the test tools. Idempotent. llama-cpp-python has no prebuilt wheel on PyPI: it is
# compiled once into .wheels/ (several minutes on 2 cores), which later runs and the llama_cpp
# image build (images/llama_cpp/Dockerfile) reuse. torch is pinned through a constraints file (default .ci/constraints.txt,
# override with LLEM_CONSTRAINTS=path, or LLEM_CONSTRAINTS= to let pip choose).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
CONSTRAINTS=${LLEM_CONSTRAINTS-.ci/constraints.txt}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# pip >= 24 normalises extra names (llama_cpp == llama-cpp, PEP 685); older pip ignores such extras.
quiet_pip() {  # this machine's PIP_FIND_LINKS may name absent folders: drop only those warnings
  .venv/bin/python -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
quiet_pip install -q 'pip>=24'
LLAMA_PIN=$(sed -n 's/.*"\(llama-cpp-python==[^"]*\)".*/\1/p' pyproject.toml)
if ! ls .wheels/llama_cpp_python-"${LLAMA_PIN#llama-cpp-python==}"-*.whl >/dev/null 2>&1; then
  echo "setup: compiling $LLAMA_PIN (CPU) into .wheels/ once; this takes several minutes" >&2
  quiet_pip wheel -q --no-deps -w .wheels "$LLAMA_PIN"
fi
args=(-q --find-links .wheels -e ".[transformers,llama_cpp,test]")
[ -n "$CONSTRAINTS" ] && args=(-c "$CONSTRAINTS" "${args[@]}")
quiet_pip install "${args[@]}"
.venv/bin/llem --version
