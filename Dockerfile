# EstateFlow back-office: one image for web (gunicorn), worker and beat (compose.yaml).
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=estateflow.settings.production \
    DJANGO_STATIC_ROOT=/app/staticfiles \
    DJANGO_MEDIA_ROOT=/app/var/media

# Node runs the D1 engine (sync/d1_engine); curl answers the health checks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl nodejs npm \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 estateflow \
    && useradd --system --uid 10001 --gid estateflow --home-dir /app --shell /usr/sbin/nologin estateflow

WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt
COPY sync/d1_engine/package.json sync/d1_engine/package-lock.json sync/d1_engine/
RUN npm ci --prefix sync/d1_engine --omit=dev --no-audit --no-fund
COPY . .
# Static files are collected at build time (whitenoise serves them); the settings need their
# variables to load, so the build names throwaway values and the local stand-ins.
RUN DJANGO_SECRET_KEY=collectstatic-only DATABASE_URL=postgres://build@localhost/build \
    CELERY_BROKER_URL=redis://localhost:6379/0 REDIS_URL=redis://localhost:6379/1 \
    D1_TARGET=local R2_TARGET=local python manage.py collectstatic --no-input \
    && mkdir -p /app/var/media \
    && chown -R estateflow:estateflow /app/var

USER estateflow
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
CMD ["gunicorn", "-c", "gunicorn.conf.py", "estateflow.wsgi:application"]
