# The service in a small image: built in a Rust image, run in Debian slim as a user without
# privileges, with the committed model inside. Works with docker and podman:
#   docker build -t moderation .
#   docker run -p 127.0.0.1:50051:50051 -p 127.0.0.1:8080:8080 -v moderation-data:/var/lib/moderation moderation
# Inside a container the service listens on every address; with authentication off it then
# serves only clients on its own loopback (protected mode), so publish the ports to a client
# that runs inside, or mount a configuration with auth on (see deploy/moderation.toml).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin moderation

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/moderation moderation \
    && mkdir -p /var/lib/moderation /etc/moderation && chown moderation /var/lib/moderation
COPY --from=build /src/target/release/moderation /usr/local/bin/moderation
COPY models /usr/share/moderation/models
ENV MODERATION_SERVER__LISTEN=0.0.0.0:50051 \
    MODERATION_HTTP__LISTEN=0.0.0.0:8080 \
    MODERATION_METRICS__LISTEN=0.0.0.0:9464 \
    MODERATION_STORE__PATH=/var/lib/moderation/moderation.db \
    MODERATION_CLASSIFIER__MODEL=/usr/share/moderation/models/vi-en-20261127.model \
    MODERATION_CLASSIFIER__MODELS_DIR=/usr/share/moderation/models
USER moderation
WORKDIR /var/lib/moderation
VOLUME /var/lib/moderation
EXPOSE 50051 8080 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
    CMD ["moderation", "health", "--server", "http://127.0.0.1:50051"]
ENTRYPOINT ["moderation"]
CMD ["serve"]
