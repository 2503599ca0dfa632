# Static glibc build (see BENCHMARKS.md for the size), shipped on distroless/static as non-root.
# The binary needs nothing from the image: the CA and token come from the service-account mount.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY vendor-schemas ./vendor-schemas
COPY examples ./examples
ENV RUSTFLAGS="-C target-feature=+crt-static"
RUN cargo build --release --locked --target x86_64-unknown-linux-gnu --bin kubemirror

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/x86_64-unknown-linux-gnu/release/kubemirror /kubemirror
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/kubemirror"]
