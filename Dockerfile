# Stevedore's image: a static release binary on a minimal base (distroless static: CA certificates, which
# rustls reads for the apiserver and kubelet, /etc/passwd, tzdata; no shell).
#
#   docker build -t stevedore --build-arg REVISION=$(git rev-parse --short=12 HEAD) .
#
# Works with Docker's legacy builder (no BuildKit features). Base images are build arguments, so a mirror
# or a local image can stand in. PREBUILT=<path in the context> takes a binary built on the host
# (`RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --target x86_64-unknown-linux-gnu`)
# instead of compiling here; the tests use it, as their build containers cannot reach crates.io.
ARG BUILD_IMAGE=docker.io/library/rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:latest

FROM ${BUILD_IMAGE} AS build
ARG REVISION=unknown
ARG PREBUILT=
WORKDIR /src
COPY . .
# crt-static on the gnu target: ring and psm are this tree's only C and assembly, and both link statically.
RUN set -e; \
    if [ -n "$PREBUILT" ]; then \
      cp "$PREBUILT" /stevedore; \
    else \
      apt-get update -qq && apt-get install -y -qq --no-install-recommends protobuf-compiler; \
      STEVEDORE_REVISION="$REVISION" RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build --release --locked --target x86_64-unknown-linux-gnu; \
      cp target/x86_64-unknown-linux-gnu/release/stevedore /stevedore; \
    fi; \
    /stevedore --version

FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="stevedore" \
      org.opencontainers.image.description="Container, pod and node resource metrics for Prometheus" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /stevedore /bin/stevedore
# Root, so that capabilities added by the runtime (DAC_READ_SEARCH, SYS_PTRACE) are effective; the
# manifests drop every other capability. The exporter writes nothing.
USER 0:0
EXPOSE 9777
ENTRYPOINT ["/bin/stevedore"]
