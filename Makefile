# The two commands of the README: `make run` and `make test`. Everything they need is set up here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test venv lint clean chromium

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

# Secrets for the local demo are generated once into var/ (never committed).
var/secret_key var/admin_password var/demo_password:
	mkdir -p var
	umask 077 && $(PYTHON) -c "import secrets; print(secrets.token_urlsafe(48 if '$@' == 'var/secret_key' else 12))" > $@

run: venv var/secret_key var/admin_password var/demo_password
	@set -euo pipefail; \
	export SECRET_KEY="$$(cat var/secret_key)" DEBUG="$${DEBUG:-true}"; \
	$(PY) manage.py migrate --no-input -v0; \
	DEMO_PASSWORD="$$(cat var/demo_password)" $(PY) manage.py seed_demo; \
	ADMIN_PASSWORD="$$(cat var/admin_password)" $(PY) manage.py ensure_admin --username admin; \
	echo ""; \
	echo "  Portal:  http://$(HOST):$(PORT)/"; \
	echo "  Admin:   admin / $$(cat var/admin_password)"; \
	echo "  Demo users (developer, techlead, operator): dana.dev, tom.lead, olga.ops / $$(cat var/demo_password)"; \
	echo ""; \
	$(PY) manage.py qcluster & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT INT TERM; \
	( sleep 3; $(PY) manage.py check_worker --timeout 60 ) & \
	$(PY) manage.py runserver --noreload $(HOST):$(PORT)

lint: venv
	$(PY) -m ruff check .

# Browser tests drive Debian's Chromium (never a browser Playwright downloads itself).
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
	  || echo "chromium could not be installed: browser tests will be skipped"

test: venv chromium
	$(PY) -m ruff check .
	DJANGO_SETTINGS_MODULE=portal.test_settings $(PY) manage.py makemigrations --check --dry-run
	$(PY) -m pytest

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
