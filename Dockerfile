# Every edgedev image, from the repository root (the build context):
#   docker build -t edgedev:0.1.0 .                                   # the core: `edgedev agent`
#   docker build --build-arg MAPPER=modbus -t edgedev-modbus:0.1.0 .  # a mapper: `edgedev run`
# MAPPER is one of modbus, opcua, ble, gpio, mqtt. deploy/build-images builds them all;
# docs/containers.md has the multi-architecture (buildx) command and the measured sizes.
#
# BASE_IMAGE is any Debian-based Python 3.11+ image with pip; the default is the official
# slim image of PYTHON_VERSION. The images run as uid/gid 10001 (the manifests'
# runAsUser), keep their data in the volume /var/lib/edgedev, and take an `edgedev` command
# line as arguments. No HEALTHCHECK: Kubernetes probes /healthz and /readyz on
# EDGEDEV_HEALTH_PORT itself (docs/containers.md says why, and how to add one for docker run).
ARG PYTHON_VERSION=3.12
ARG BASE_IMAGE=python:${PYTHON_VERSION}-slim
ARG MAPPER=
ARG ROLE=${MAPPER:+mapper}

# Wheels of the core, the mapper and every dependency, for the target platform. A mapper
# image carries EXTRAS: the DMI extra (gRPC), so that it serves KubeEdge's EdgeCore (`run
# --dmi`), the web extra for the mapper's REST API (`run --rest-port`), and the pushMethod
# sinks of the Device CRD; MySQL's client (asyncmy, 36 MB) only when asked for:
# --build-arg EXTRAS=dmi,web,sinks.
FROM ${BASE_IMAGE} AS builder
ARG MAPPER
ARG EXTRAS=dmi,web,redis,http,influxdb,tdengine,otel
# lgpio, the gpio mapper's pin backend, publishes no Linux wheels: its sdist compiles here,
# statically linked (PYPI=1 below). The compiler stays in this stage.
RUN if [ "$MAPPER" = gpio ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends gcc libc6-dev swig \
      && rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# Only the chosen mapper's folder (for the core image, MAPPER is empty: all of mappers/,
# unused, since only `.` becomes a wheel below).
COPY mappers/${MAPPER} ./mappers/${MAPPER}
# The cache mount keeps pip's downloads between builds, outside every image.
RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    case "$MAPPER" in \
      "") core=. mapper= ;; \
      gpio) core=".[$EXTRAS]" mapper="./mappers/gpio[lgpio]" ;; \
      *) core=".[$EXTRAS]" mapper="./mappers/$MAPPER" ;; \
    esac \
    && PYPI=1 pip wheel --wheel-dir /wheels "$core" ${mapper:+"$mapper"}

# The runtime: the base image plus those wheels, an unprivileged user and the data directory.
FROM ${BASE_IMAGE} AS runtime
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --root-user-action=ignore --no-index --find-links /wheels /wheels/*.whl \
    && groupadd --gid 10001 edgedev \
    && useradd --no-log-init --uid 10001 --gid 10001 --no-create-home \
         --home-dir /var/lib/edgedev --shell /usr/sbin/nologin edgedev \
    && install -d -o 10001 -g 10001 /var/lib/edgedev
ENV PYTHONUNBUFFERED=1 \
    EDGEDEV_DATA_DIR=/var/lib/edgedev
USER 10001:10001
WORKDIR /var/lib/edgedev
VOLUME ["/var/lib/edgedev"]
ENTRYPOINT ["edgedev"]

# The core image serves the twin agent; a mapper image runs the mapper on the mounted
# devices file (and `edgedev simulate` for the simulators).
FROM runtime AS core
CMD ["agent"]

FROM runtime AS mapper
CMD ["run", "-f", "/etc/edgedev/devices.yaml"]

FROM ${ROLE:-core}
ARG MAPPER
ARG VERSION=0.1.0
ARG REVISION=
ARG SOURCE=
LABEL org.opencontainers.image.title="edgedev${MAPPER:+-}${MAPPER}" \
      org.opencontainers.image.description="edgedev ${MAPPER:-twin agent}${MAPPER:+ mapper}: field devices to KubeEdge device twins" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
