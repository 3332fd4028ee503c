# syntax=docker/dockerfile:1
#
# One image with all four RingiFlow binaries (gateway, command-svc, query-svc, projector-svc):
# they share every dependency, so one build and one tag to promote, and the migration Job can
# run `command-svc migrate` and `projector-svc migrate` from the image the services run. The
# binaries are in /usr/local/bin; choose one with the container's command, e.g.
#
#   docker build -t ringiflow:0.1.0 .
#   docker run --rm ringiflow:0.1.0 gateway --help
#
# Stages: chef (toolchain + cargo-chef) → planner (dependency recipe) → builder (dependencies,
# cached as a layer until Cargo.toml/Cargo.lock change, then the workspace) → runtime.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS chef
# librdkafka is built from source by rdkafka-sys (make, a C/C++ compiler) against the system
# zlib and OpenSSL (pkg-config finds them).
# DL3008 (pin apt package versions) ignored: the Debian release is pinned by the base image
# tag, and its point releases carry only security fixes, which a rebuild should pick up.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ make pkg-config libssl-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
ARG CARGO_PROFILE=release
COPY --from=planner /src/recipe.json recipe.json
# Only the dependencies: this layer is reused until Cargo.toml or Cargo.lock change.
RUN cargo chef cook --profile "${CARGO_PROFILE}" --locked --recipe-path recipe.json \
    -p gateway -p command-svc -p query-svc -p projector-svc
COPY . .
RUN cargo build --profile "${CARGO_PROFILE}" --locked \
        -p gateway -p command-svc -p query-svc -p projector-svc --bins \
    && mkdir -p /out \
    && for bin in gateway command-svc query-svc projector-svc; do \
        cp "target/${CARGO_PROFILE}/${bin}" /out/; \
    done

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="RingiFlow" \
      org.opencontainers.image.description="Event-sourced CQRS approval workflows: gateway, command-svc, query-svc, projector-svc" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="RingiFlow"
# What the binaries need beyond glibc and zlib (both in the base image): libssl3 for Kafka TLS
# and SCRAM, CA certificates for TLS to Kafka and PostgreSQL, and the time-zone database for
# `dashboard(timeZone)`. Nothing else: no shell tools beyond the base image's.
# DL3008 ignored as above: the release is pinned by the tag, point releases are security fixes.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tzdata libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 ringiflow \
    && useradd --system --uid 10001 --gid ringiflow --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin ringiflow
COPY --from=builder /out/ /usr/local/bin/
# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
ENV RINGIFLOW_LOG_FORMAT=json
# The gateway's port; the gRPC services use 50051 (command), 50052 (query), 50053 (projector).
EXPOSE 4000 50051 50052 50053
CMD ["gateway"]
