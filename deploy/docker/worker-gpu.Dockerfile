# syntax=docker/dockerfile:1.7
# GPU worker: tfjs-node-gpu 4.22 binds libtensorflow 2.9.1, which is built for
# CUDA 11.2 and cuDNN 8.1, so the base is NVIDIA's CUDA 11.2 + cuDNN 8 runtime.
# (CUDA minor-version compatibility lets a later 11.x base, e.g.
# nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04, run it too: pass --build-arg CUDA_BASE=...)
# The node host driver must support CUDA 11.2 (driver >= 460).
#
#   docker build -f deploy/docker/worker-gpu.Dockerfile -t tlsweep/worker-gpu:0.1.0 .
#
# The build downloads libtensorflow-gpu from storage.googleapis.com (tfjs-node-gpu's
# install script) and compiles its N-API binding, so it needs network access.

ARG CUDA_BASE=nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04

FROM node:20-bullseye-slim AS node

# Build on the runtime's OS: the native binding must link against the same glibc.
FROM ${CUDA_BASE} AS deps
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s /usr/local/lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --no-audit --no-fund \
 # tfjs-node-gpu is an optional dependency, dropped in silence if its install fails: fail the build instead.
 && ls node_modules/@tensorflow/tfjs-node-gpu/deps/lib/libtensorflow.so*

FROM ${CUDA_BASE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends tini ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 tlsweep && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin tlsweep \
 && mkdir -p /cache && chown 10001:10001 /cache
COPY --from=node /usr/local/bin/node /usr/local/bin/node
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY proto ./proto
COPY services ./services
# /cache: CUDA's kernel cache and anything fetched at run time; mount a volume
# here (the manifests mount an emptyDir) — the root filesystem is read-only.
ENV NODE_ENV=production TLSWEEP_BACKEND=tensorflow CUDA_CACHE_PATH=/cache/cuda XDG_CACHE_HOME=/cache \
    TF_FORCE_GPU_ALLOW_GROWTH=true TF_CPP_MIN_LOG_LEVEL=1
VOLUME ["/cache"]
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "--import", "tsx", "services/worker/src/main.ts"]
