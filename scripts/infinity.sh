#!/usr/bin/env bash
# infinity-emb (an OpenAI-compatible embedding server) in its own virtual environment, for the
# remote-embedder tests (tests/app/test_embeddings_any.py) and `bench http`. Its pins
# (sentence-transformers < 4, numpy < 2, typer 0.12) clash with the project's, so it never
# shares .venv.
#
#   scripts/infinity.sh                 installs it (idempotent: pip runs only when this script
#                                       changed since the last install); prints the venv's path
#   scripts/infinity.sh serve PORT [DIR]
#                                       serves DIR (default: the bundled MiniLM folder,
#                                       selector.embedding.bundled_model_path()) from disk,
#                                       offline, on 127.0.0.1:PORT; POST /embeddings answers
#                                       OpenAI-style, under the model name "minilm"
#
# The venv lives at ${MMDSHOT_INFINITY_VENV:-<repo>/.venv-infinity}. torch is installed first,
# pinned, so that pip takes the CPU wheel rather than a CUDA build.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${MMDSHOT_INFINITY_VENV:-$repo/.venv-infinity}
stamp="$venv/.mmdshot-infinity"
want=$(sha256sum "$repo/scripts/infinity.sh" | cut -d' ' -f1)

install() {
    # pip's output goes to stderr: stdout is the venv's path only.
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    if [ ! -x "$venv/bin/python" ]; then
        "${PYTHON:-python3}" -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install -q --upgrade pip >&2
    "$venv/bin/python" -m pip install -q "torch==2.13.0" >&2
    # transformers/sentence-transformers: the newest pair infinity 0.0.77 runs with (it needs
    # sentence-transformers < 4); click 8.1: typer 0.12 breaks on click 8.2's make_metavar.
    "$venv/bin/python" -m pip install -q \
        "torch==2.13.0" \
        "infinity-emb[server,torch]==0.0.77" \
        "sentence-transformers==3.4.1" \
        "transformers==4.48.3" \
        "numpy==1.26.4" \
        "click==8.1.8" >&2
    echo "$want" >"$stamp"
}

case "${1:-install}" in
install)
    install
    echo "$venv"
    ;;
serve)
    port=${2:?usage: scripts/infinity.sh serve PORT [MODEL_DIR]}
    model=${3:-}
    install
    if [ -z "$model" ]; then
        # The bundled MiniLM folder, found by the project's own code (PYTHONPATH=<repo>).
        model=$(cd "$repo" && PYTHONPATH="$repo" python -c \
            'import selector.embedding as e; print(e.bundled_model_path())')
    fi
    export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 INFINITY_ANONYMOUS_USAGE_STATS=0 \
        DO_NOT_TRACK=1
    exec "$venv/bin/infinity_emb" v2 \
        --model-id "$model" \
        --served-model-name minilm \
        --engine torch \
        --device cpu \
        --no-bettertransformer \
        --host 127.0.0.1 \
        --port "$port" \
        --url-prefix "" \
        --log-level warning
    ;;
*)
    echo "usage: scripts/infinity.sh [install | serve PORT [MODEL_DIR]]" >&2
    exit 2
    ;;
esac
