# syntax=docker/dockerfile:1
# The fedchain image of the compose demo: fedchain-server, fedchain-client and the fedchain CLI
# (with the Fabric Gateway client; no torch). Build context: the repository root.
#   docker build -f docker/fedchain.Dockerfile -t fedchain:local .
# Only pyproject.toml, README.md and src/ are sent (fedchain.Dockerfile.dockerignore).

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/fedchain
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[fabric]"

# An unprivileged user. /shared is where the compose demo's named volume is mounted: the volume
# takes this folder's owner when first mounted, so the setup service (this image) can write the
# PKI into it and the other fedchain services can read their keys.
RUN useradd --create-home --uid 10001 fedchain \
    && mkdir -p /shared /data \
    && chown fedchain:fedchain /shared /data
USER fedchain
WORKDIR /data

# The compose services choose fedchain-server or fedchain-client as their entrypoint.
ENTRYPOINT ["fedchain"]
CMD ["--help"]
