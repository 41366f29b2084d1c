# syntax=docker/dockerfile:1
# The hookfleet image: `hookfleet worker` by default; `api` and `topology` are its other roles.
#   docker build -t hookfleet .                   (BuildKit, Docker's default builder since 23.0)
#   docker run --rm hookfleet --help
# docker-compose.yml builds it as hookfleet:local; deploy/k8s/ runs it as uid 10001 with a
# read-only root filesystem, which it needs: the binary writes nothing to disk.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep crates.io downloads and compiled dependencies from one build to the
# next; the binary is copied out of the cached target directory in the same step, because a
# cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin hookfleet \
    && install -D -m 0755 target/release/hookfleet /out/hookfleet

FROM debian:bookworm-slim
# ca-certificates: the trust roots for HTTPS deliveries. bash (always in Debian) and coreutils
# carry the compose healthchecks; there is no curl.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 hookfleet \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin hookfleet
COPY --from=build /out/hookfleet /usr/local/bin/hookfleet
# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
# 9464: a worker's /metrics, /healthz, /readyz. 8080: the admin API (HOOKFLEET_API_ADDR, which
# must be 0.0.0.0:8080 in a container: its default listens on 127.0.0.1 only).
EXPOSE 9464 8080
ENTRYPOINT ["hookfleet"]
CMD ["worker"]
