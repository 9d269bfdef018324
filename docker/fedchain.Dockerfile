# The fedchain image of the compose demo: fedchain-server, fedchain-client and the fedchain CLI
# (with the Fabric Gateway client; no torch). Build context: the repository root.
#   docker build -f docker/fedchain.Dockerfile -t fedchain:local .
# Only pyproject.toml, README.md and src/ are sent (fedchain.Dockerfile.dockerignore).
# No `# syntax=` line: it makes BuildKit fetch a frontend image from Docker Hub, so the build
# would fail offline even with the base image present. The base image is a build argument
# (docker/compose.yaml passes FEDCHAIN_PYTHON_IMAGE), defaulting to the public one.

ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/fedchain
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[fabric]"

# An unprivileged user. /shared and /data/models are where the compose demo's named volumes are
# mounted: a volume takes its folder's owner when first mounted, so the setup service (this
# image) can write the PKI into /shared, the aggregator its models into /data/models, and the
# other fedchain services can read them.
RUN useradd --create-home --uid 10001 fedchain \
    && mkdir -p /shared /data/models \
    && chown fedchain:fedchain /shared /data /data/models
USER fedchain
WORKDIR /data

# The compose services choose fedchain-server or fedchain-client as their entrypoint. Python as
# PID 1 would ignore SIGTERM without a handler: fedchain's commands install one, and compose runs
# every service with `init: true` anyway (`docker run --init` by hand).
ENTRYPOINT ["fedchain"]
CMD ["--help"]
