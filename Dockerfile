# syntax=docker/dockerfile:1
# clever-relay image: wheels are built in a throw-away stage, the runtime stage only installs
# them. No config and no secrets are baked in: mount the config at /etc/clever-relay/config.toml
# (a ConfigMap in k8s) and pass tokens as environment variables (a Secret).

FROM python:3.12.7-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# constraints.txt pins the versions CI tested (docs/development.md), so the image runs them too.
COPY pyproject.toml README.md constraints.txt ./
COPY relay ./relay
RUN pip wheel --wheel-dir /wheels --constraint constraints.txt .

FROM python:3.12.7-slim-bookworm AS runtime
LABEL org.opencontainers.image.title="clever-relay" \
      org.opencontainers.image.description="Clever Events API v3 to Redis streams, with legacy v2 topics" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10001 relay \
    && useradd --system --uid 10001 --gid relay --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin relay
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/clever_relay-*.whl
USER 10001:10001
EXPOSE 8080
# slim has no curl: probe /healthz with the interpreter. RELAY__HTTP__PORT follows the config.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('RELAY__HTTP__PORT', '8080') + '/healthz', timeout=3)"]
# Exec form: clever-relay runs as PID 1 with no shell in between, so SIGTERM reaches Python.
ENTRYPOINT ["clever-relay"]
CMD ["run", "--config", "/etc/clever-relay/config.toml"]
