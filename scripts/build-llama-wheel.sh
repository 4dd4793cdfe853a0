#!/usr/bin/env bash
# Compile llama-cpp-python (the version pinned in pyproject.toml) into .wheels/ once, for the
# llama.cpp engine: PyPI has no CPU wheel. Reused by later set-ups and by the llama_cpp image
# (images/llama_cpp/Dockerfile installs the wheel it finds in .wheels/).
# Only what this project uses is built: the CPU backend and libllama. Not built: the multimodal
# library (LLAVA_BUILD=OFF; llama-cpp-python loads it only for image chat handlers), tests,
# examples, tools, server binaries, curl/OpenSSL support. GGML_NATIVE=OFF makes the wheel portable
# (host and image alike; -march=native would tie it to the build machine's CPU); for CPU
# benchmarks of real models set LLEM_LLAMA_CMAKE_ARGS="-DGGML_NATIVE=ON ..." and delete the wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib-progress.sh
[ -x .venv/bin/python ] || { echo "build-llama-wheel: run scripts/setup.sh first" >&2; exit 2; }
LLAMA_PIN=$(sed -n 's/.*"\(llama-cpp-python==[^"]*\)".*/\1/p' pyproject.toml)
if ls .wheels/llama_cpp_python-"${LLAMA_PIN#llama-cpp-python==}"-*.whl >/dev/null 2>&1; then
  exit 0
fi
# The CPU-only options live in one file, read by the llama_cpp image too when it compiles.
CMAKE_ARGS=${LLEM_LLAMA_CMAKE_ARGS:-$(cat images/llama_cpp/cpu-cmake-args)}
step "compiling $LLAMA_PIN (CPU backend only) into .wheels/" "about 9 CPU-minutes: ~5 min on an idle 2-core machine"
mkdir -p .wheels
log=.wheels/build-llama.log
set +e
# -v shows ninja's [n/N] lines; one progress line per 10% of the units.
CMAKE_ARGS="$CMAKE_ARGS" .venv/bin/python -m pip wheel -v --no-deps -w .wheels "$LLAMA_PIN" 2>&1 | tee "$log" \
  | awk 'match($0, /^ *\[[0-9]+\/[0-9]+\]/) { s = substr($0, 1, RLENGTH); sub(/^ *\[/, "", s);
           sub(/\]$/, "", s); split(s, p, "/");
           pct = int(100 * p[1] / p[2]); if (pct >= last + 10) { last = pct;
           print "setup:   llama.cpp: " p[1] "/" p[2] " build steps"; fflush() } }' >&2
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" != 0 ]; then
  grep -v "$_pip_noise" "$log" | tail -n 40 >&2
  echo "build-llama-wheel: compiling failed (exit $rc); the whole output is in $log" >&2
  exit "$rc"
fi
done_step
