#!/usr/bin/env bash
# The one test command (README.md, .ci/run): install, lint, type-check, test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# infinity-emb in its own venv, for the remote-embedder tests (tests/app/test_embeddings_any.py).
MMDSHOT_INFINITY_VENV=$(./scripts/infinity.sh)
export MMDSHOT_INFINITY_VENV
ruff check selector app tests bench mmdshot_integrations
ruff format --check selector app tests bench mmdshot_integrations
mypy
# The generated clients match openapi.json, and the TypeScript example type-checks.
./scripts/clients.sh --check
# Debian's chromium for the browser test of /console, /docs and /redoc (tests/app/test_console.py)
# and wrk for the HTTP benchmark's load script (tests/bench/test_http_load.py).
missing=""
command -v chromium >/dev/null || missing="$missing chromium"
command -v wrk >/dev/null || missing="$missing wrk"
if [ -n "$missing" ]; then
    apt-get update -qq
    # shellcheck disable=SC2086  # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# PostgreSQL on loopback for the store and replica tests (installs Debian's postgresql if missing).
MMDSHOT_TEST_DATABASE_URL=$(./scripts/postgres.sh start)
export MMDSHOT_TEST_DATABASE_URL
trap './scripts/postgres.sh stop' EXIT
python -m pytest "$@"
