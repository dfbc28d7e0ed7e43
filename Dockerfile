# One image for the three services; the command picks one:
#   python -m services.gateway | python -m services.meme | python -m services.ledger
FROM python:3.11-slim-bookworm AS build
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
COPY shared ./shared
COPY services ./services
COPY cli ./cli
RUN uv sync --frozen --no-dev

FROM python:3.11-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin maas
WORKDIR /app
COPY --from=build /app /app
ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MAAS_GATEWAY_HOST=0.0.0.0 \
    MAAS_MEME_HOST=0.0.0.0 \
    MAAS_LEDGER_HOST=0.0.0.0
USER 10001
EXPOSE 8080 8081 8082
CMD ["python", "-m", "services.gateway"]
