# Build: docker build -t hookfleet .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin hookfleet

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 hookfleet
COPY --from=build /src/target/release/hookfleet /usr/local/bin/hookfleet
USER hookfleet
EXPOSE 9464
ENTRYPOINT ["hookfleet"]
CMD ["worker"]
