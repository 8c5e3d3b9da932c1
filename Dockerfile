# intersect-etl in a container: a build stage with the -dev packages, and a
# small runtime stage with only the shared libraries, the binary and the jobs.
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake pkg-config \
      libcurl4-openssl-dev libpq-dev libjson-c-dev libyaml-dev zlib1g-dev libdeflate-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
 && cmake --build /build -j"$(nproc)" \
 && cmake --install /build --prefix /usr/local

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libcurl4 libpq5 libjson-c5 libyaml-0-2 zlib1g libdeflate0 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /nonexistent --shell /usr/sbin/nologin etl
COPY --from=build /usr/local/bin/intersect-etl /usr/local/bin/intersect-etl
COPY --from=build /usr/local/share/intersect-etl /usr/local/share/intersect-etl
USER etl
WORKDIR /usr/local/share/intersect-etl
ENTRYPOINT ["intersect-etl"]
CMD ["run", "--migrate", "jobs/example.yaml"]
