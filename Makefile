# Two entry points for a fresh machine: `make run` (demo admin) and `make test` (whole suite).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/estateflow

.PHONY: install run test lint services clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements-dev.txt
	npm ci --prefix sync/d1_engine --no-audit --no-fund
	touch $(STAMP)

install: $(STAMP)

## Serve the admin with a demo staff user and 10,000 generated agents.
run: install
	bash scripts/run_demo.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## ruff, migrations check, deploy check, then pytest on PostgreSQL + Redis.
test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DATABASE_URL=$(TEST_DATABASE_URL) DJANGO_SETTINGS_MODULE=estateflow.settings.test \
		$(PY) manage.py makemigrations --check --dry-run
	DJANGO_SETTINGS_MODULE=estateflow.settings.production \
		DJANGO_SECRET_KEY="$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(64))')" \
		DATABASE_URL=$(TEST_DATABASE_URL) \
		$(PY) manage.py check --deploy --fail-level WARNING
	DATABASE_URL=$(TEST_DATABASE_URL) $(VENV)/bin/pytest

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
