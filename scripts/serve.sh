#!/usr/bin/env bash
# Starts the service on the embedded default: ./data, bundled MiniLM, no other server.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec mmdshot serve "$@"
