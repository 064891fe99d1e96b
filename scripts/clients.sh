#!/usr/bin/env bash
# Regenerates the clients from the committed openapi.json: the Python client (clients/python,
# openapi-python-client with clients/openapi-python-client.yaml) and the TypeScript types
# (clients/typescript/src/schema.d.ts, openapi-typescript). With --check it changes nothing:
# it regenerates both into a temporary folder, fails if the committed ones differ, and
# type-checks the TypeScript example (npm ci, tsc --noEmit). The hand-written modules in
# HANDWRITTEN (mmdshot_client/wait.py) are kept across regenerations.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VIRTUAL_ENV:-}" ]; then
    . .venv/bin/activate
fi

# Hand-written modules inside the generated package: --overwrite deletes the folder, so they
# are copied aside and put back (and, for --check, into the fresh copy).
HANDWRITTEN=(mmdshot_client/wait.py)

generate_python() {
    # The import endpoint's application/x-ndjson body is unsupported by the generator (it
    # warns); the generated function sends the JSON-array form of the same body.
    local kept
    kept=$(mktemp -d)
    for file in "${HANDWRITTEN[@]}"; do
        cp "clients/python/$file" "$kept/$(basename "$file")"
    done
    openapi-python-client generate --path openapi.json --output-path "$1" \
        --config clients/openapi-python-client.yaml --meta pdm --overwrite >/dev/null
    for file in "${HANDWRITTEN[@]}"; do
        cp "$kept/$(basename "$file")" "$1/$file"
    done
    rm -rf "$kept"
}

generate_typescript() {
    (cd clients/typescript && SCHEMA_OUT="$1" npm run --silent generate >/dev/null)
}

case "${1:-}" in
    "")
        generate_python clients/python
        (cd clients/typescript && npm ci --no-audit --no-fund --silent)
        generate_typescript src/schema.d.ts
        ;;
    --check)
        scratch=$(mktemp -d)
        trap 'rm -rf "$scratch"' EXIT
        (cd clients/typescript && npm ci --no-audit --no-fund --silent)
        generate_python "$scratch/python"
        generate_typescript "$scratch/schema.d.ts"
        stale=0
        diff -r -x __pycache__ -x .pdm-build clients/python "$scratch/python" || stale=1
        diff clients/typescript/src/schema.d.ts "$scratch/schema.d.ts" || stale=1
        if [ "$stale" -ne 0 ]; then
            echo "the generated clients are stale: run scripts/clients.sh" >&2
            exit 1
        fi
        (cd clients/typescript && npx tsc --noEmit)
        ;;
    *)
        echo "usage: scripts/clients.sh [--check]" >&2
        exit 2
        ;;
esac
