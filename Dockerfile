# custody, built in one stage and run as a non-root user in a small one.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin custody

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/custody --create-home custody
COPY --from=build /src/target/release/custody /usr/local/bin/custody
COPY policies /etc/custody/policies
USER 10001:10001
WORKDIR /var/lib/custody
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/custody"]
CMD ["serve", "--config", "/etc/custody/custody.yaml"]
