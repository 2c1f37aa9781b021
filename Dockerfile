# syntax=docker/dockerfile:1
# Multi-stage build: a locked release build, then a small non-root runtime.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin tollgate

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/tollgate --create-home tollgate
COPY --from=build /src/target/release/tollgate /usr/local/bin/tollgate
# The example config listens on loopback and reads TOLLGATE_ADMIN_TOKEN: mount
# your own at /etc/tollgate/tollgate.toml (listen = ["0.0.0.0:8080"], ...).
COPY config/tollgate.example.toml /etc/tollgate/tollgate.toml
USER tollgate
WORKDIR /var/lib/tollgate
ENV TOLLGATE_CONFIG=/etc/tollgate/tollgate.toml
# Viewer HTTP, HTTPS, admin.
EXPOSE 8080 8443 9090
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/tollgate", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tollgate"]
CMD ["run"]
