# Dockerfile: the ferry-bridge container image (`docker build -t ferry-bridge:0.1.0 .`; deploy/README.md).
#
# Two stages: the official Rust image (Debian bookworm) compiles the bridge in release mode
# against Cargo.lock; the runtime is distroless cc on the same Debian release (glibc,
# libgcc, CA certificates for amqps://; no shell, no package manager) running as uid 65532.
# RUN --mount needs BuildKit (the default builder since Docker 23; DOCKER_BUILDKIT=1 before).
# tests/node/deploy.test.mjs checks this file (stages, non-root USER, `-p ferry-bridge`, the
# workspace members copied, EXPOSE) and the FERRY_* variables below against the binary.

ARG RUST_IMAGE=rust:1-bookworm

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# Cargo resolves the whole workspace (and checks Cargo.lock with --locked) even to build one
# package, so every member's manifest and sources come along; docs, JS and tests do not, and
# changing them does not invalidate this layer.
COPY Cargo.toml Cargo.lock ./
COPY protocol protocol
COPY bridge bridge
COPY client-wasm client-wasm
COPY examples examples
COPY bench bench
# The registry and target/ live in BuildKit cache mounts: a rebuild after a source change
# recompiles Ferry's crates only. The cache mount is gone after this RUN, hence the copy to /out.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release -p ferry-bridge --locked \
    && install -D -m 0755 target/release/ferry-bridge /out/ferry-bridge

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ferry-bridge /usr/local/bin/ferry-bridge
# Listen on every interface in a container. Set as FERRY_* variables rather than CMD so that
# arguments given to the container (Kubernetes `args`, `docker run IMAGE --flag`) add to them
# instead of replacing them; a flag still overrides its variable. The bridge refuses a
# non-loopback address without authentication: give it a --jwt-* flag, --auth-rpc, or (for a
# local trial only) --no-auth.
ENV FERRY_LISTEN=0.0.0.0:8080 \
    FERRY_ADMIN_LISTEN=0.0.0.0:9090
# 8080: HTTP + WebSocket (/ws, /healthz, /readyz); 9090: admin (/metrics, /healthz, /readyz).
EXPOSE 8080 9090
# distroless's `nonroot` user, numerically, so Kubernetes can verify runAsNonRoot.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/ferry-bridge"]
