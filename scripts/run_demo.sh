#!/usr/bin/env bash
# `make run`, inside the services estateflow/services_local.py resolved (DATABASE_URL,
# CELERY_BROKER_URL and REDIS_URL are set): migrate, start a real Celery worker (with beat),
# import 10,000 demo agents through it, sync them to the local D1 target, push photos to the
# local R2 folder, then serve the admin.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
# The Celery app defaults to the production settings (like wsgi.py): the demo names the local ones.
export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-estateflow.settings.local}
: "${DATABASE_URL:?run me through make run (python -m estateflow.services_local run -- ...)}"
: "${CELERY_BROKER_URL:?run me through make run (python -m estateflow.services_local run -- ...)}"
VAR=${ESTATEFLOW_VAR_DIR:-var}
PORT=${PORT:-8000}
mkdir -p "$VAR"

$PY manage.py migrate --no-input

.venv/bin/celery -A estateflow worker -B -s "$VAR/celerybeat-schedule" -Q default,imports,sync -c 2 --loglevel INFO \
    >"$VAR/celery-worker.log" 2>&1 &
WORKER_PID=$!
SERVER_PID=""
# Worker and server are stopped before the services they use (the caller stops those after this
# script). Both run in the background so that Ctrl-C or a SIGTERM to this script ends them too.
stop_children() {
    kill $SERVER_PID $WORKER_PID 2>/dev/null || true
    wait $SERVER_PID $WORKER_PID 2>/dev/null || true
}
trap stop_children EXIT
trap 'exit 130' INT TERM
echo "Celery worker with beat started (pid $WORKER_PID, log $VAR/celery-worker.log)"

# Queues the demo import and follows it to its end: the worker above does the work.
$PY manage.py demo_setup --agents 10000 --wait

# D1: the local target (D1_LOCAL_PATH, a SQLite file) unless D1_DATABASE_ID is set. The worker
# starts a sync of its own when the import ends; this one waits its turn (skipped while that runs).
for attempt in $(seq 30); do
    if $PY manage.py sync_d1; then break; fi
    [ "$attempt" = 30 ] && { echo "D1 sync did not succeed; see the Sync runs page"; break; }
    sleep 2
done
# R2: the local folder (R2_LOCAL_PATH) unless an endpoint is set (skipped while beat's own push runs).
$PY manage.py sync_assets || echo "R2 push skipped; beat runs it on schedule"

echo
echo "Admin: http://127.0.0.1:$PORT/admin/  (demo user: demo / ${DEMO_PASSWORD:-estateflow-demo})"
echo "The dashboard shows the agents, the finished import job and the D1 sync; Ctrl-C stops everything."
$PY manage.py runserver --noreload "127.0.0.1:$PORT" &
SERVER_PID=$!
wait $SERVER_PID
