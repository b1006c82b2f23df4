# syntax=docker/dockerfile:1
# mediagate: multi-stage build — dependencies and the package are installed into a virtualenv
# in a build stage, and only that virtualenv is copied into a slim, non-root runtime.
#   docker build -t mediagate .
#   docker run -p 8000:8000 -e MEDIAGATE_SANDBOX=true mediagate
# The same image runs `mediagate serve` (default), `mediagate worker` and `mediagate sandbox`.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/mediagate
WORKDIR /src
# Metadata first, so the dependency layer is rebuilt only when pyproject.toml changes.
COPY pyproject.toml README.md ./
RUN mkdir app && touch app/__init__.py \
    && /opt/mediagate/bin/pip install . \
    && /opt/mediagate/bin/pip uninstall -y mediagate
COPY app ./app
RUN /opt/mediagate/bin/pip install --no-deps .

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="mediagate" \
      org.opencontainers.image.description="Self-hosted gateway that puts AI media providers behind one REST API" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 mediagate \
    && useradd --system --uid 10001 --gid mediagate --create-home --home-dir /home/mediagate mediagate \
    && mkdir -p /data && chown mediagate:mediagate /data
COPY --from=build /opt/mediagate /opt/mediagate
# HEALTHCHECK_URL: what the probe below asks; a worker container sets its own port (9100).
ENV PATH=/opt/mediagate/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MEDIAGATE_DATA_DIR=/data \
    HEALTHCHECK_URL=http://127.0.0.1:8000/healthz
USER mediagate
WORKDIR /home/mediagate
VOLUME ["/data"]
EXPOSE 8000 9100
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=2)"]
CMD ["mediagate", "serve", "--host", "0.0.0.0", "--port", "8000"]
