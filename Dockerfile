# latsep's images, one file, built from the repository root:
#   docker build --target api    -t latsep-api .     # the HTTP API: slim, no torch
#   docker build --target worker -t latsep-worker .  # CUDA PyTorch worker + the shipped bundles
#   docker build --target train  -t latsep-train .   # the worker + the corpus tools (training)
# docker-compose.yml builds all three. The worker's base must carry the torch version pinned
# in pyproject.toml (torch==2.13.0).
ARG WORKER_BASE=pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime

FROM python:3.11-slim AS api
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY docker/requirements-api.txt /tmp/requirements-api.txt
RUN pip install -r /tmp/requirements-api.txt
COPY pyproject.toml README.md ./
COPY src ./src
# --no-deps: the package's own dependency list includes torch, which the API never imports.
RUN pip install --no-deps . && useradd --system --uid 10001 latsep
USER latsep
ENV LATSEP_HOST=0.0.0.0 \
    LATSEP_PORT=8000 \
    LATSEP_REDIS_URL=redis://redis:6379/0
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["latsep", "api"]

FROM ${WORKER_BASE} AS worker
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DEBIAN_FRONTEND=noninteractive
# ffmpeg: museval (scores against uploaded references) and uploads libsndfile cannot read.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg libsndfile1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && useradd --system --uid 10001 --create-home latsep
# The shipped bundles, owned by the worker's user: a named volume mounted here starts as a
# copy of them, a training run writes its bundles into that volume, and the worker loads
# them when it restarts (no rebuild).
COPY --chown=latsep:latsep artifacts ./artifacts
USER latsep
ENV LATSEP_REDIS_URL=redis://redis:6379/0 \
    LATSEP_ARTIFACTS_DIR=/app/artifacts \
    LATSEP_DEVICE=auto
# SIGTERM = rq warm shutdown: the running job finishes, then the worker exits.
STOPSIGNAL SIGTERM
CMD ["latsep", "worker"]

FROM worker AS train
USER root
# FluidSynth, the General MIDI soundfonts (csound's GMbank: the held-out set) and MMA for
# `latsep corpus build`; /data (a volume in compose) for the corpus and the training runs.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        fluidsynth fluid-soundfont-gm timgm6mb-soundfont musescore-general-soundfont-small \
        csound-soundfont mma \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown latsep:latsep /data
USER latsep
CMD ["latsep", "train", "bundle", "--help"]
