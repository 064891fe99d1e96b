#!/usr/bin/env bash
# Builds the Dockerfile with podman on a machine with no Docker engine and no access to a
# container registry, then runs the built image's filesystem and checks /ready and a selection.
#   1. debootstrap a Debian root filesystem and import it as the Dockerfile's base image tag
#   2. podman build --isolation chroot --format docker (OCI drops HEALTHCHECK); CPU torch from
#      a local wheel when one is on disk
#   3. podman mount the image, chroot into it as the image's user with the image's environment,
#      start its entrypoint, check /health, /ready, a pool, an upsert and a selection
# Needs root, podman and debootstrap (apt-get install podman debootstrap), and network access
# to the Debian mirror and PyPI. Slow (tens of minutes): not part of CI.
# Settings: MIRROR (Debian mirror), TORCH_WHEELS (folder with a torch wheel, default
# /opt/wheels; without one the Dockerfile's TORCH_INDEX_URL is used), HOST_CA (a CA bundle pip
# in the build must trust, e.g. /etc/ssl/certs/ca-certificates.crt behind a TLS-inspecting
# proxy), WORK (scratch folder),
# PORT (for the smoke test), KEEP=1 keeps the image and scratch folder.
set -euo pipefail
cd "$(dirname "$0")/.."
MIRROR=${MIRROR:-http://deb.debian.org/debian}
TORCH_WHEELS=${TORCH_WHEELS:-/opt/wheels}
WORK=${WORK:-/var/tmp/mmdshot-verify-image}
PORT=${PORT:-18000}
IMAGE=localhost/mmdshot:verify
PODMAN=(podman --storage-driver vfs)

step() { printf '\n== %s\n' "$*"; }

BASE=$(sed -n 's/^ARG BASE_IMAGE=//p' Dockerfile | head -n 1)
SUITE=$(echo "$BASE" | sed -n 's/^debian:\([a-z]*\).*/\1/p')
[ -n "$SUITE" ] || { echo "the base $BASE is not a Debian image; cannot debootstrap it" >&2; exit 1; }
mkdir -p "$WORK"

step "1. debootstrap Debian $SUITE and import it as $BASE"
if ! "${PODMAN[@]}" image exists "docker.io/library/$BASE"; then
    rm -rf "$WORK/rootfs"
    debootstrap --variant=minbase "$SUITE" "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log"
    rm -rf "$WORK/rootfs/var/cache/apt/archives/"*.deb "$WORK/rootfs/var/lib/apt/lists/"*
    tar -C "$WORK/rootfs" -c . | "${PODMAN[@]}" import - "docker.io/library/$BASE"
    rm -rf "$WORK/rootfs"
fi

step "2. podman build --isolation chroot"
BUILD_ARGS=()
VOLUMES=()
WHEEL=$(find "$TORCH_WHEELS" -maxdepth 1 -name 'torch-*+cpu-*.whl' 2>/dev/null | sort | tail -n 1)
if [ -n "$WHEEL" ]; then
    # torch and its dependencies as a folder index, mounted into the build's RUN steps.
    rm -rf "$WORK/torch-index" "$WORK/wheels" && mkdir -p "$WORK/torch-index"
    python3 -m pip download -q --only-binary=:all: --find-links "$TORCH_WHEELS" \
        --dest "$WORK/wheels" "$WHEEL"
    python3 - "$WORK/wheels" "$WORK/torch-index" <<'PY'
import re
import shutil
import sys
from pathlib import Path

wheels, index = Path(sys.argv[1]), Path(sys.argv[2])
for wheel in wheels.glob("*.whl"):
    project = index / re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()
    project.mkdir(exist_ok=True)
    shutil.copy(wheel, project / wheel.name)
for project in index.iterdir():
    links = "".join(f'<a href="{path.name}">{path.name}</a>\n' for path in project.glob("*.whl"))
    (project / "index.html").write_text(f"<html><body>\n{links}</body></html>\n")
PY
    VOLUMES+=(-v "$WORK/torch-index:/torch-index:ro")
    BUILD_ARGS+=(--build-arg TORCH_INDEX_URL=file:///torch-index)
fi
if [ -n "${HOST_CA:-}" ]; then
    # Egress through a TLS-inspecting proxy: pip in the build trusts the host's CA bundle
    # (mounted for the RUN steps only; the image keeps Debian's own).
    printf '[global]\ncert = /host-ca.crt\n' >"$WORK/pip.conf"
    VOLUMES+=(-v "$HOST_CA:/host-ca.crt:ro" -v "$WORK/pip.conf:/etc/pip.conf:ro")
fi
"${PODMAN[@]}" build --isolation chroot --format docker --pull=never "${VOLUMES[@]}" "${BUILD_ARGS[@]}" \
    -t "$IMAGE" . 2>&1 | tee "$WORK/build.log" | grep -E 'STEP|COMMIT'

step "3. run the image's filesystem (podman mount + chroot)"
CONTAINER=$("${PODMAN[@]}" create "$IMAGE")
ROOT=$("${PODMAN[@]}" mount "$CONTAINER")
SERVER=""
cleanup() {
    set +e
    if [ -n "$SERVER" ]; then
        kill "$SERVER" && wait "$SERVER"
    fi
    for mounted in proc dev; do
        umount "$ROOT/$mounted" 2>/dev/null
    done
    "${PODMAN[@]}" unmount "$CONTAINER" >/dev/null
    "${PODMAN[@]}" rm "$CONTAINER" >/dev/null
    if [ -z "${KEEP:-}" ]; then
        "${PODMAN[@]}" rmi "$IMAGE" >/dev/null
    fi
}
trap cleanup EXIT
mount -t proc proc "$ROOT/proc"
mount --bind /dev "$ROOT/dev"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
inspect() { "${PODMAN[@]}" image inspect --format "$1" "$IMAGE"; }
mapfile -t ENVIRONMENT < <(inspect '{{range .Config.Env}}{{println .}}{{end}}' | sed '/^$/d')
IMAGE_USER=$(inspect '{{.Config.User}}')
WORKDIR=$(inspect '{{.Config.WorkingDir}}')
mapfile -t COMMAND < <(inspect '{{range .Config.Entrypoint}}{{println .}}{{end}}{{range .Config.Cmd}}{{println .}}{{end}}' | sed '/^$/d')
echo "user $IMAGE_USER, workdir $WORKDIR, command ${COMMAND[*]}"
chroot --userspec="$IMAGE_USER" "$ROOT" /usr/bin/env -i "${ENVIRONMENT[@]}" \
    MMDSHOT_PORT="$PORT" sh -c "cd '$WORKDIR' && exec \"\$@\"" - "${COMMAND[@]}" \
    >"$WORK/server.log" 2>&1 &
SERVER=$!

URL="http://127.0.0.1:$PORT"
for _ in $(seq 1 300); do
    if python3 -c "import urllib.request; urllib.request.urlopen('$URL/ready', timeout=2)" 2>/dev/null; then
        break
    fi
    kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/server.log"; echo "the server exited" >&2; exit 1; }
    sleep 1
done
# The image's own HEALTHCHECK command, run inside the image.
HEALTHCHECK=$(inspect '{{json .Config.Healthcheck.Test}}')
echo "healthcheck: $HEALTHCHECK"
python3 - "$URL" "$HEALTHCHECK" <<'EOF'
import json
import sys
import urllib.request

url, healthcheck = sys.argv[1], json.loads(sys.argv[2])
assert healthcheck[0] == "CMD" and healthcheck[1] == "python", healthcheck


def call(method: str, path: str, body: object = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url + path, data=data, method=method, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.status, json.loads(response.read() or b"{}")


status, ready = call("GET", "/ready")
assert status == 200 and ready["ready"], ready
status, info = call("GET", "/v1/info")
print("info:", info["model"], info["dimension"], info["device"])
assert info["model"] and info["dimension"] == 384, info
call("POST", "/v1/pools", {"name": "smoke"})
examples = [
    {"input": "the brakes failed on the highway", "output": "negative", "label": "negative"},
    {"input": "a smooth and quiet ride", "output": "positive", "label": "positive"},
    {"input": "the car parked itself", "output": "neutral", "label": "neutral"},
    {"input": "it swerved into my lane", "output": "negative", "label": "negative"},
    {"input": "I love the lane assist", "output": "positive", "label": "positive"},
]
status, upserted = call("POST", "/v1/pools/smoke/examples", {"examples": examples})
assert status == 200 and len(upserted["inserted"]) == 5, upserted
status, chosen = call("POST", "/v1/pools/smoke/select", {"query": "brakes on the motorway", "k": 2})
assert status == 200 and len(chosen["examples"]) == 2, chosen
print("selected:", [example["input"] for example in chosen["examples"]], "mmd2", chosen["mmd2"])
EOF
# The HEALTHCHECK runs in the image, with the image's python and user.
chroot --userspec="$IMAGE_USER" "$ROOT" /usr/bin/env -i "${ENVIRONMENT[@]}" MMDSHOT_PORT="$PORT" \
    python -c "$(echo "$HEALTHCHECK" | python3 -c 'import json, sys; print(json.load(sys.stdin)[-1])')"
echo "healthcheck passed"
step "the image builds, starts, answers /ready and selects"
