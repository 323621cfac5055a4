# custody, built in one stage and run as a non-root user in a small one.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The release profile keeps limited debug info (for profiling the benchmarks); the image
# ships the binary without it and without its symbol table. Both are kept in custody.debug, which
# the stripped binary names (.gnu_debuglink) and which the `debug` stage below exports.
RUN cargo build --release --locked --bin custody \
    && cd target/release \
    && objcopy --only-keep-debug custody custody.debug \
    && objcopy --strip-debug --strip-unneeded custody \
    && objcopy --add-gnu-debuglink=custody.debug custody

# The shipped binary's debug info, for symbolising a crash or a profile of the image's binary:
#   docker build --target debug --output type=local,dest=debug .
# then `gdb -s debug/custody.debug custody` (or put it beside the binary).
FROM scratch AS debug
COPY --from=build /src/target/release/custody.debug /custody.debug

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
