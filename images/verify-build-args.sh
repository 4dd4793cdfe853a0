#!/bin/sh
# Shared by every engine Dockerfile (images/*/Dockerfile): refuse to label an image with a version or contract
# fingerprint that differs from the source tree installed in it (a stale label would let the host
# accept an image whose result files it cannot read). Usage: verify-build-args.sh ENGINE VERSION CONTRACT
set -eu
engine=$1 want_version=$2 want_contract=$3
py=$(command -v python || command -v python3)  # `python`: what the runner starts
found=$("$py" -c "from llenergymeasure.domain import contract_fingerprint as f; print(f())")
version=$("$py" -c "import llenergymeasure as l; print(l.__version__)")
if [ "$want_contract" != "$found" ]; then
  echo "LLEM_CONTRACT build argument '$want_contract' differs from the source tree's contract '$found'; build with: llem images build $engine" >&2
  exit 1
fi
if [ "$want_version" != "$version" ]; then
  echo "LLEM_VERSION build argument '$want_version' differs from the source tree's version '$version'" >&2
  exit 1
fi
