# syntax=docker/dockerfile:1.7
# triage: one image for every process (`triage ingest | worker | notify | dlq`).
# Build: docker build -t registry.example.com/platform/triage:0.1.0 .
ARG PYTHON_IMAGE=docker.io/library/python:3.11.13-slim-bookworm

# --- build: compilers live here only, for any dependency without a wheel --------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/triage
WORKDIR /src
COPY pyproject.toml constraints.txt ./
COPY triage ./triage
COPY collectors ./collectors
# The prompt templates: installed with the package (data package triage_prompts, pyproject.toml).
COPY prompts ./prompts
RUN /opt/triage/bin/pip install -c constraints.txt . \
 && /opt/triage/bin/python -m compileall -q /opt/triage/lib

# --- runtime: the interpreter, the virtual environment, an unprivileged user -----------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/triage/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TRIAGE_HTTP_HOST=0.0.0.0 \
    TRIAGE_LOG_FORMAT=json \
    TRIAGE_STATE_DIR=/tmp/triage
RUN groupadd --system --gid 10001 triage \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin triage
COPY --from=build /opt/triage /opt/triage
# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 9095
ENTRYPOINT ["triage"]
CMD ["serve"]
