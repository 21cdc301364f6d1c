# syntax=docker/dockerfile:1
# floodgate image for the distributed mode (`floodgate ship|detect|api`) and
# every other command. Two stages: the build stage has the compilers that
# better-sqlite3 may need and the dev dependencies (TypeScript); the runtime
# stage gets the compiled JavaScript and production dependencies only, and
# runs as an unprivileged user.
ARG NODE_VERSION=20.20.2

FROM node:${NODE_VERSION}-bookworm-slim AS build
# better-sqlite3 is native: its install script downloads a prebuilt binary
# and falls back to node-gyp, which needs python3, make and a C++ compiler.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the package's own `prepare` would compile before the
# sources are here. better-sqlite3 is the one dependency with an install
# script, so it is built explicitly right after.
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && npm rebuild better-sqlite3
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY parsers ./parsers
COPY detectors ./detectors
COPY bench ./bench
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:${NODE_VERSION}-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
# Both stages use the same base image, so the native module compiled above
# matches this Node's ABI and glibc.
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# `floodgate demo` reads the bundled log; `npm run conformance` its allowlist.
COPY demo ./demo
COPY conformance/out-of-scope.yaml ./conformance/out-of-scope.yaml
# A system user with no shell and no home to write to; state lives in
# /var/lib/floodgate (a volume in docker-compose.yml).
RUN groupadd --system --gid 10001 floodgate \
 && useradd --system --uid 10001 --gid floodgate --no-create-home --shell /usr/sbin/nologin floodgate \
 && mkdir -p /var/lib/floodgate /etc/floodgate \
 && chown floodgate:floodgate /var/lib/floodgate
USER floodgate:floodgate
# API (floodgate run|api) and /metrics + /health (ship|detect --metrics-listen).
EXPOSE 8025 9464
ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
CMD ["--help"]
