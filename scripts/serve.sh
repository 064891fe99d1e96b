#!/usr/bin/env bash
# Starts the service on the embedded default: ./data, bundled MiniLM, no other server.
# The first start installs the runtime into .venv (torch==2.13.0, then the project without
# extras); later starts run no pip at all while pyproject.toml is unchanged, so they work with
# no package index (PIP_NO_INDEX=1, no network). The install is editable: code edits need none.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
venv_create
want=$(venv_stamp runtime pyproject.toml scripts/serve.sh)
if ! venv_current runtime "$want"; then
    .venv/bin/python -m pip install -q "torch==2.13.0"
    .venv/bin/python -m pip install -q -e .
    venv_mark runtime "$want"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/mmdshot serve "$@"
