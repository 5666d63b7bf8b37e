# The backbeat binary: scheduler, executor and client in one image.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin backbeat

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/backbeat /usr/local/bin/backbeat
ENTRYPOINT ["backbeat"]
