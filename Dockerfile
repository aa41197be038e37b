# voicebot: web and worker image. Slim, non-root, espeak-ng for offline Hebrew TTS.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY voicebot ./voicebot
RUN pip install .

RUN useradd --system --uid 10001 --home /app voicebot \
    && mkdir -p /app/.cache && chown -R voicebot /app/.cache
USER voicebot

ENV LOG_FORMAT=json
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/health || exit 1

CMD ["voicebot", "serve", "--host", "0.0.0.0", "--port", "8000"]
