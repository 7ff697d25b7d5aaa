# Two entry points for a fresh machine: `make run` (demo admin) and `make test` (whole suite).
# Both find PostgreSQL and Redis through estateflow/services_local.py: DATABASE_URL / CELERY_BROKER_URL /
# REDIS_URL when set, else servers on 127.0.0.1:5432 / 6379, else embedded ones started from var/
# (ESTATEFLOW_SERVICES=auto|embedded|system; README "What each command uses").
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
SERVICES := $(PY) -m estateflow.services_local

.PHONY: install run serve worker test test-steps lint services-status services-stop clean

$(STAMP): requirements.txt requirements-dev.txt sync/d1_engine/package-lock.json
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements-dev.txt
	npm ci --prefix sync/d1_engine --no-audit --no-fund
	touch $(STAMP)

install: $(STAMP)

## Serve the admin with a demo staff user and 10,000 agents imported by a real Celery worker.
run: install
	$(SERVICES) run --database estateflow_demo -- bash scripts/run_demo.sh

## The production stack locally: production settings, collectstatic, gunicorn (gunicorn.conf.py) on
## the services `make run` uses. D1/R2 stay local stand-ins unless their variables are given; the
## secret is throwaway and HTTPS redirects are off (README "Running in production").
serve: install
	$(SERVICES) run --database estateflow_demo -- env DJANGO_SETTINGS_MODULE=estateflow.settings.production \
		D1_TARGET=$${D1_TARGET:-local} R2_TARGET=$${R2_TARGET:-local} \
		DJANGO_SECRET_KEY="$${DJANGO_SECRET_KEY:-$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(64))')}" \
		DJANGO_ALLOWED_HOSTS="$${DJANGO_ALLOWED_HOSTS:-127.0.0.1,localhost}" \
		DJANGO_SECURE_SSL_REDIRECT=$${DJANGO_SECURE_SSL_REDIRECT:-false} \
		bash -c '$(PY) manage.py migrate --no-input && $(PY) manage.py collectstatic --no-input && \
			exec $(VENV)/bin/gunicorn -c gunicorn.conf.py estateflow.wsgi:application'

## A Celery worker (with beat) on the same services as `make run`, e.g. in a second terminal.
worker: install
	$(SERVICES) run --database estateflow_demo -- env DJANGO_SETTINGS_MODULE=estateflow.settings.local \
		$(VENV)/bin/celery -A estateflow worker -B \
		-s var/celerybeat-schedule -Q default,imports,sync -c 2 --loglevel INFO

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## ruff, then (inside the resolved services) migrations check, deploy check and pytest.
## Redis databases 15 (broker) and 14 (cache) as the test settings expect.
test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(SERVICES) run --database estateflow --broker-db 15 --cache-db 14 -- $(MAKE) --no-print-directory test-steps

# What `make test` runs once DATABASE_URL, CELERY_BROKER_URL and REDIS_URL are set.
test-steps:
	DJANGO_SETTINGS_MODULE=estateflow.settings.test $(PY) manage.py makemigrations --check --dry-run
	DJANGO_SETTINGS_MODULE=estateflow.settings.production D1_TARGET=local R2_TARGET=local \
		DJANGO_SECRET_KEY="$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(64))')" \
		$(PY) manage.py check --deploy --fail-level WARNING
	DJANGO_SETTINGS_MODULE=estateflow.settings.test ESTATEFLOW_CHROMIUM="$$(bash scripts/browser.sh)" \
		$(VENV)/bin/pytest

services-status:
	$(SERVICES) status

## Stop embedded servers that a killed command left running in var/.
services-stop:
	$(SERVICES) stop

clean:
	-test -x $(PY) && $(SERVICES) stop
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
