# syntax=docker/dockerfile:1
# paraminit: multi-stage build. The builder caches dependencies in their own layer (a dummy
# crate is built first), the runtime image is debian:bookworm-slim with a non-root user and no
# shell tools the service needs (the health check is the binary itself).

FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src
ENV CARGO_TERM_COLOR=never
# 1. Dependencies only: the manifests plus empty sources.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src target/release/deps/paraminit* target/release/deps/libparaminit* \
           target/release/paraminit* target/release/.fingerprint/paraminit-*
# 2. The crate itself.
COPY openapi.yaml ./
COPY src ./src
RUN cargo build --release --locked \
 && strip target/release/paraminit

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin paraminit
COPY --from=builder /src/target/release/paraminit /usr/local/bin/paraminit
USER 10001:10001
ENV PARAMINIT_ADDR=0.0.0.0:8080 \
    PARAMINIT_LOG_FORMAT=json \
    RUST_LOG=info
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/paraminit", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/paraminit"]
