# syntax=docker/dockerfile:1
# One image for every rtvoice service. The entrypoint selects the service:
#   docker run IMAGE ingress --host 0.0.0.0 --port 8080 ...     (rtvoice ingress ...)
#   bridge | recorder | local-realtime | operator | health | crd | token
# Built by skaffold (skaffold.yaml); the Helm chart and the operator only set `args`, keeping tini as PID 1.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# A compiler only in case a dependency has no wheel for this platform; it stays in this stage.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/rtvoice
ENV PATH=/opt/rtvoice/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services ./services
COPY operator ./operator
COPY scripts/install-extras.sh ./scripts/
RUN pip install --upgrade pip \
 && pip install . \
 && bash scripts/install-extras.sh python

FROM python:3.11-slim
# tini: PID 1 that forwards SIGTERM (graceful drain) and reaps the exec probes' processes.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 rtvoice \
 && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin rtvoice
COPY --from=build /opt/rtvoice /opt/rtvoice
ENV PATH=/opt/rtvoice/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080 50051 50052
ENTRYPOINT ["tini", "--", "rtvoice"]
CMD ["--help"]
