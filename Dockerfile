# The bot in a container: non-root, data on a volume, health from `python -m bot health`.
#   docker build -t vietartview-bot .
#   docker run --env-file .env -v vav-data:/data vietartview-bot
# With PostgreSQL: compose.yaml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/data \
    LOG_FORMAT=json

RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin bot \
    && mkdir /data && chown bot:bot /data && chmod 0700 /data

WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
COPY bot bot
COPY handlers handlers
COPY storage storage
COPY locales locales
# Every dependency at the version the lock file pins (the same as the tested one).
RUN pip install -c requirements.lock -e ".[postgres]" && python -m compileall -q bot handlers storage

USER bot
VOLUME ["/data"]
# The webhook server (when WEBHOOK_PUBLIC_URL is set); bind it for the proxy in front.
ENV WEBHOOK_HOST=0.0.0.0
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-m", "bot", "health"]
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot", "run"]
