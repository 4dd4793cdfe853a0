#!/bin/sh
# Shared by the GPU engine images (images/gpu/Dockerfile: vllm, tensorrt_llm): put the llem harness into the
# engine's environment without moving anything the engine pinned. Run from the Dockerfile as root:
#   sh install-harness.sh SOURCE_TREE ENGINE_MODULE
# 1. The interpreter: the runner starts `python -u -m llem_harness` (runners/docker_runner.py). Where
#    the base has only `python3`, `python` is linked to it; then `python` itself must import the engine.
# 2. The engine's environment as built is frozen (`pip list --format=freeze`, every package ==
#    version) into /usr/local/share/llem/engine-freeze.txt and used as constraints.
# 3. Only images/harness-requirements.txt is installed (not the host stack), then llenergymeasure with
#    --no-deps. 4. The image is refused if any package of the freeze changed version or vanished.
set -eu
src=$1 module=$2
if ! command -v python >/dev/null 2>&1; then
  py3=$(command -v python3) || { echo "install-harness: the base image has neither python nor python3" >&2; exit 1; }
  ln -s "$py3" /usr/local/bin/python
  echo "install-harness: linked python -> $py3 (the runner starts 'python')"
fi
python -c "import sys; assert sys.version_info >= (3, 10), 'the harness needs Python >= 3.10; python is ' + sys.version"
if ! python -c "import $module" ; then
  echo "install-harness: 'python' ($(command -v python)) cannot import $module; the runner would start an interpreter without the engine" >&2
  exit 1
fi
mkdir -p /usr/local/share/llem
freeze=/usr/local/share/llem/engine-freeze.txt
python -m pip list --format=freeze > "$freeze"
python -m pip install -c "$freeze" -r "$src/images/harness-requirements.txt"
python -m pip install --no-deps "$src"
python -m pip list --format=freeze > /tmp/llem-after.txt
changed=$(grep -vxFf /tmp/llem-after.txt "$freeze" || true)
if [ -n "$changed" ]; then
  echo "install-harness: installing the harness changed the engine's environment (before: $changed)" >&2
  exit 1
fi
rm -f /tmp/llem-after.txt
python -c "import llem_harness, $module; print('harness ok in', __import__('sys').executable, '; $module', getattr($module, '__version__', '?'))"
