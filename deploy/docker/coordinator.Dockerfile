# syntax=docker/dockerfile:1.7
# Slim image for the coordinator, the sweeper CLI (`tlsweep k8s run`, the
# nightly CronJob) and CPU workers (tfjs wasm backend; the dev overlay).
#
#   docker build -f deploy/docker/coordinator.Dockerfile -t tlsweep/tlsweep:0.1.0 .
#
# Runs TypeScript through tsx (a runtime dependency), as `npm run` does; no build step.

FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only; the optional tfjs-node-gpu (GPU image only) stays out.
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --omit=optional --no-audit --no-fund

FROM node:20-bookworm-slim
# tini: PID 1 that forwards SIGTERM, so the coordinator and workers drain.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 tlsweep && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin tlsweep
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY bin ./bin
COPY proto ./proto
COPY services ./services
# The launcher renders the worker Job from these manifests.
COPY deploy/k8s ./deploy/k8s
COPY examples ./examples
ENV NODE_ENV=production TLSWEEP_GRPC_ADDRESS=0.0.0.0:50051
USER 10001:10001
EXPOSE 50051
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "--import", "tsx", "services/coordinator/src/main.ts"]
