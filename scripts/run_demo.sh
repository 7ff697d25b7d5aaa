#!/usr/bin/env bash
# `make run`: migrate, demo user, 10,000 demo agents, then the admin (and a
# Celery worker when Redis answers). PostgreSQL is used when it answers on
# 127.0.0.1:5432 and DATABASE_URL is not set; otherwise a SQLite file in var/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
mkdir -p var

if [ -z "${DATABASE_URL:-}" ] && pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='estateflow_demo'" | grep -q 1 \
        || createdb -h 127.0.0.1 -U postgres estateflow_demo
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/estateflow_demo
fi
if [ -z "${CELERY_BROKER_URL:-}" ] && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    export CELERY_BROKER_URL=redis://127.0.0.1:6379/0
fi
echo "Database: ${DATABASE_URL:-SQLite file var/db.sqlite3}"
echo "Broker:   ${CELERY_BROKER_URL:-none (tasks run in-process)}"

$PY manage.py migrate --no-input
$PY manage.py demo_setup --agents 10000

WORKER_PID=""
if [ -n "${CELERY_BROKER_URL:-}" ]; then
    .venv/bin/celery -A estateflow worker -B -s var/celerybeat-schedule -Q default,imports,sync -c 2 --loglevel INFO \
        >var/celery-worker.log 2>&1 &
    WORKER_PID=$!
    echo "Celery worker with beat (D1 and R2 syncs on schedule) started (log: var/celery-worker.log)"
    trap 'kill $WORKER_PID 2>/dev/null || true' EXIT
fi
echo "Admin: http://127.0.0.1:8000/admin/"
$PY manage.py runserver 127.0.0.1:8000
