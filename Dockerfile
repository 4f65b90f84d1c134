# cep-bus image for deploy/k8s: `docker build -t cep-bus:0.1.0 .`
# Stage 1 builds wheels (needs a compiler for a few C extensions); stage 2 only installs them and
# runs as an unprivileged user. The Deployments pass the service as the argument: router|notifier|ledger|
# inbox, so the image holds the `services` and `inbox` extras (docs/installing.md), not the audit's PDF
# stack nor the embedded broker.
FROM python:3.11-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY cepbus ./cepbus
COPY cepbus_app ./cepbus_app
COPY services ./services
COPY schemas ./schemas
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[services,inbox]"

FROM python:3.11-slim-bookworm AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 CEPBUS_LOG_FORMAT=json
RUN groupadd --system --gid 10001 cepbus \
    && useradd --system --uid 10001 --gid cepbus --home-dir /app --shell /usr/sbin/nologin cepbus
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels "cep-bus[services,inbox]" && rm -rf /wheels
WORKDIR /app
RUN mkdir -p /app/.cepbus && chown -R 10001:10001 /app
USER 10001:10001
EXPOSE 9101 9102 9103
ENTRYPOINT ["cep-bus"]
CMD ["--help"]
