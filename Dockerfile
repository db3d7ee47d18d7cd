# syntax=docker/dockerfile:1
# The edgedev core image: the `edgedev` command with no protocol installed. It runs the twin
# agent (`edgedev agent`) by default; mapper images are built from mappers/<protocol>/Dockerfile.
#
# Build from the repository root, for both architectures of edge nodes:
#   docker buildx build --platform linux/amd64,linux/arm64 -t edgedev:0.1.0 .
# Single architecture, loaded into the local docker:
#   docker build -t edgedev:0.1.0 .
ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS builder
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# Wheels of edgedev and every dependency, for the target platform.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:${PYTHON_VERSION}-slim
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels edgedev \
    && groupadd --system --gid 10001 edgedev \
    && useradd --system --uid 10001 --gid 10001 --no-create-home edgedev \
    && install -d -o 10001 -g 10001 /var/lib/edgedev
ENV PYTHONUNBUFFERED=1 \
    EDGEDEV_DATA_DIR=/var/lib/edgedev \
    EDGEDEV_DB=/var/lib/edgedev/twins.db
USER 10001:10001
WORKDIR /var/lib/edgedev
VOLUME ["/var/lib/edgedev"]
ENTRYPOINT ["edgedev"]
CMD ["agent"]
